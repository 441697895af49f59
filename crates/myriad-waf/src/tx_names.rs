//! The TX variables some rule may create.
//!
//! The CRS's optional limits first test that their variable exists (`SecRule
//! &TX:ARG_LENGTH "@eq 1" "chain"`); `crs-setup.conf` leaves them commented out, so with no
//! rule setting the variable the chain never runs and what its other links read (every
//! argument's length) cannot move a verdict. The answer errs on one side only: a script,
//! `exec`, or a name with a macro that could spell the variable makes it possibly set.

use std::collections::HashSet;

use super::seclang::{self, Directive};
use super::unreached::may_name;

#[derive(Debug, Clone, Default)]
pub struct TxNames {
    /// Names `setvar` gives, lower case, without `tx.`.
    set: HashSet<String>,
    /// Names `setvar` gives through macros (`tx.%{rule.id}-...`), lower case.
    patterns: Vec<String>,
    /// Anything may be set.
    any: bool,
}

impl TxNames {
    /// Any variable may exist (the rules were not read).
    pub fn any() -> Self {
        Self {
            any: true,
            ..Self::default()
        }
    }

    /// What the `setvar`s of these rules may create.
    pub fn of(sources: &[(&str, Vec<Directive>)]) -> Self {
        let Some(assigned) = seclang::assignments(sources.iter().flat_map(|(_, ds)| ds)) else {
            return Self::any();
        };
        let mut out = Self::default();
        for (name, _) in assigned {
            if name.starts_with('!') {
                continue; // a deletion creates nothing
            }
            if name.contains("%{") {
                out.patterns.push(name);
            } else if let Some(var) = name.strip_prefix("tx.") {
                out.set.insert(var.to_owned());
            }
        }
        out
    }

    /// Whether TX variable `name` may exist in some transaction. Captures (`TX:0` to
    /// `TX:9`) may.
    pub fn may_exist(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let full = format!("tx.{name}");
        self.any
            || name.bytes().all(|b| b.is_ascii_digit())
            || self.set.contains(&name)
            || self.patterns.iter().any(|p| may_name(p, &full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seclang;

    fn names(text: &str) -> TxNames {
        let parsed = [(
            "t",
            seclang::parse(text, std::path::Path::new("/")).unwrap(),
        )];
        TxNames::of(&parsed)
    }

    #[test]
    fn variables_some_setvar_may_create() {
        let tx = names(
            "SecAction \"id:1,phase:1,pass,nolog,setvar:tx.arg_length=400,setvar:'tx.Score=+5'\"\n\
             SecRule ARGS \"@rx a\" \"id:2,phase:2,pass,setvar:!tx.gone,setvar:tx.header_%{tx.0}=1\"\n",
        );
        assert!(tx.may_exist("ARG_LENGTH") && tx.may_exist("score"));
        assert!(!tx.may_exist("max_num_args"));
        assert!(!tx.may_exist("gone"), "a deletion creates nothing");
        assert!(tx.may_exist("header_x"), "a macro may spell it");
        assert!(tx.may_exist("0"), "captures");
        let script = names("SecRule ARGS \"@rx a\" \"id:3,phase:2,pass,exec:/x.lua\"\n");
        assert!(script.may_exist("max_num_args"));
        assert!(TxNames::any().may_exist("max_num_args"));
    }
}
