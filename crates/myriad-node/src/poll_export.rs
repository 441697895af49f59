//! A poll's answers as CSV (RFC 4180), for hosts to take to a spreadsheet.

use myriad_proto::meeting::GivenAnswer;
use myriad_proto::{Answer, PollKind, PollState};

/// One row per answer, in the order given: its number, who gave it (named polls only) and
/// the answer in words. Cells a spreadsheet would run as a formula are defused.
pub fn to_csv(poll: &PollState, answers: &[GivenAnswer]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    if poll.info.anonymous {
        w.write_record(["answer_no", "answer"])?;
    } else {
        w.write_record(["answer_no", "identity", "name", "answer"])?;
    }
    for (i, (voter, answer)) in answers.iter().enumerate() {
        let (no, text) = (
            (i + 1).to_string(),
            cell(&in_words(&poll.info.kind, answer)),
        );
        if poll.info.anonymous {
            w.write_record([no, text])?;
        } else {
            let (identity, name) = voter
                .as_ref()
                .map(|v| (cell(&v.identity), cell(&v.name)))
                .unwrap_or_default();
            w.write_record([no, identity, name, text])?;
        }
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// An answer as a person reads it: the options' texts, the rating, the text.
fn in_words(kind: &PollKind, answer: &Answer) -> String {
    let option = |i: &u32| match kind {
        PollKind::Single { options } | PollKind::Multiple { options } => {
            options.get(*i as usize).cloned().unwrap_or_default()
        }
        _ => String::new(),
    };
    match answer {
        Answer::Single { option: o } => option(o),
        Answer::Multiple { options } => options.iter().map(option).collect::<Vec<_>>().join("; "),
        Answer::Rating { value } => value.to_string(),
        Answer::Text { text } => text.clone(),
    }
}

/// A cell that starts like a formula (`=`, `+`, `-`, `@`, tab, CR) gets a leading quote, so a
/// spreadsheet shows it instead of running it.
fn cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use myriad_proto::meeting::Voter;
    use myriad_proto::{PollInfo, PollResults};

    use super::*;

    fn poll(kind: PollKind, anonymous: bool) -> PollState {
        PollState {
            info: PollInfo {
                id: 1,
                question: "Lunch?".into(),
                kind,
                anonymous,
                open: false,
            },
            results: PollResults::default(),
        }
    }

    #[test]
    fn named_answers_say_who_and_what_in_words_quoted() {
        let kind = PollKind::Multiple {
            options: vec!["soup, hot".into(), "salad".into()],
        };
        let voter = |n: &str| {
            Some(Voter {
                identity: n.into(),
                name: format!("{n} \"the\" one"),
            })
        };
        let answers = [
            (
                voter("ann"),
                Answer::Multiple {
                    options: vec![0, 1],
                },
            ),
            (voter("=cmd"), Answer::Multiple { options: vec![1] }),
        ];
        let csv = to_csv(&poll(kind, false), &answers).unwrap();
        assert_eq!(
            csv,
            "answer_no,identity,name,answer\n\
             1,ann,\"ann \"\"the\"\" one\",\"soup, hot; salad\"\n\
             2,'=cmd,\"'=cmd \"\"the\"\" one\",salad\n"
        );
    }

    #[test]
    fn anonymous_answers_name_nobody() {
        let answers = [
            (None, Answer::Rating { value: 4 }),
            (None, Answer::Rating { value: 2 }),
        ];
        let csv = to_csv(&poll(PollKind::Rating { max: 5 }, true), &answers).unwrap();
        assert_eq!(csv, "answer_no,answer\n1,4\n2,2\n");
        let text = [(
            None,
            Answer::Text {
                text: "line\nbreak".into(),
            },
        )];
        let csv = to_csv(&poll(PollKind::Text, true), &text).unwrap();
        assert_eq!(csv, "answer_no,answer\n1,\"line\nbreak\"\n");
    }
}
