//! Getting ready for scheduled meetings: how many will come, from where and when
//! ([`Forecaster`], learned from past meetings' [`Turnout`]), and what a node does ahead of
//! the start ([`Warmup`]).

mod forecast;
mod warmup;

pub use forecast::{held_out, Forecast, Forecaster, HeldOut, Turnout, ANY_REGION};
pub use warmup::{Step, Upcoming, Warmup, WarmupConfig};
