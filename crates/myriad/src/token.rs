//! `myriad token create`: access tokens signed with the data dir's API secret.

use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::{Subcommand, ValueEnum};
use myriad_auth::{parse_ttl, Grants};
use myriad_control::now_unix_s;
use myriad_proto::{MeetingId, Role};

use crate::config::DEFAULT_DATA;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Print a JWT that admits one person to one meeting.
    Create {
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
        #[arg(long)]
        meeting: String,
        #[arg(long)]
        identity: String,
        /// Display name [default: the identity].
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum, default_value_t = RoleArg::Attendee)]
        role: RoleArg,
        /// Lifetime: 90s, 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Host,
    CoHost,
    Panelist,
    Attendee,
}

pub fn run(cmd: TokenCommand) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create {
            data,
            meeting,
            identity,
            name,
            role,
            ttl,
        } => {
            let meeting = MeetingId::parse(&meeting).context("--meeting")?;
            let ttl_s = parse_ttl(&ttl)
                .ok_or_else(|| anyhow!("--ttl must look like 90s, 15m, 1h or 7d"))?;
            let role = match role {
                RoleArg::Host => Role::Host,
                RoleArg::CoHost => Role::CoHost,
                RoleArg::Panelist => Role::Panelist,
                RoleArg::Attendee => Role::Attendee,
            };
            let (_, key) = crate::serve::open_data(&data)?;
            let grants = Grants::for_role(meeting, identity, name, role);
            println!("{}", key.create_token(&grants, now_unix_s(), ttl_s)?);
            Ok(())
        }
    }
}
