//! The whiteboard: shapes on a board of `BOARD_SIZE` × `BOARD_SIZE` units (clients scale it
//! to their canvas), drawn, erased and undone through the meeting, which orders them.

use serde::{Deserialize, Serialize};

use crate::ParticipantId;

/// Coordinates run from 0 to this on both axes.
pub const BOARD_SIZE: u16 = 10_000;
/// Points one shape may have (a long pen stroke is sent as several).
pub const MAX_SHAPE_POINTS: usize = 2_000;
/// Longest text on the board, in bytes.
pub const MAX_BOARD_TEXT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShapeKind {
    /// A free-hand line through its points.
    Pen,
    /// From the first point to the second.
    Line,
    /// The rectangle, and the ellipse, with the two points as opposite corners.
    Rect,
    Ellipse,
    /// `text` at the point.
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shape {
    pub kind: ShapeKind,
    /// `#rrggbb`.
    pub color: String,
    /// Stroke width (or text size), in board units / 10.
    pub width: u8,
    pub points: Vec<[u16; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl Shape {
    /// Whether the shape is well-formed; what is wrong if not.
    pub fn check(&self) -> Result<(), &'static str> {
        let b = self.color.as_bytes();
        if b.len() != 7 || b[0] != b'#' || !b[1..].iter().all(u8::is_ascii_hexdigit) {
            return Err("a colour as #rrggbb");
        }
        if self.width == 0 || self.width > 64 {
            return Err("a width of 1 to 64");
        }
        let n = self.points.len();
        let count_ok = match self.kind {
            ShapeKind::Pen => (1..=MAX_SHAPE_POINTS).contains(&n),
            ShapeKind::Line | ShapeKind::Rect | ShapeKind::Ellipse => n == 2,
            ShapeKind::Text => n == 1,
        };
        if !count_ok {
            return Err("as many points as its kind takes (a pen 1 to 2000)");
        }
        if self.points.iter().flatten().any(|c| *c > BOARD_SIZE) {
            return Err("points on the board (0 to 10000)");
        }
        match (&self.kind, &self.text) {
            (ShapeKind::Text, Some(t)) if !t.trim().is_empty() && t.len() <= MAX_BOARD_TEXT => {
                Ok(())
            }
            (ShapeKind::Text, _) => Err("a text of 1 to 500 bytes"),
            (_, Some(_)) => Err("text on text shapes only"),
            (_, None) => Ok(()),
        }
    }
}

/// A shape on the board: its number (in drawing order) and who drew it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawnShape {
    pub id: u64,
    pub by: ParticipantId,
    pub shape: Shape,
}

/// What a participant does to the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum BoardOp {
    Draw {
        shape: Shape,
    },
    /// Removes shapes: one's own (moderators: anyone's).
    Erase {
        ids: Vec<u64>,
    },
    /// Removes one's own latest shape still on the board.
    Undo,
    /// Moderators empty the board.
    Clear,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(kind: ShapeKind, points: Vec<[u16; 2]>, text: Option<&str>) -> Shape {
        Shape {
            kind,
            color: "#1a2B3c".into(),
            width: 4,
            points,
            text: text.map(str::to_owned),
        }
    }

    #[test]
    fn shapes_are_checked_for_their_kind() {
        assert_eq!(
            shape(ShapeKind::Pen, vec![[0, 0], [10, 10]], None).check(),
            Ok(())
        );
        assert!(shape(ShapeKind::Pen, vec![], None).check().is_err());
        assert!(shape(ShapeKind::Pen, vec![[0, 0]; 2001], None)
            .check()
            .is_err());
        assert!(shape(ShapeKind::Rect, vec![[0, 0]], None).check().is_err());
        assert!(shape(ShapeKind::Line, vec![[0, 0], [10_001, 0]], None)
            .check()
            .is_err());
        assert_eq!(
            shape(ShapeKind::Text, vec![[5, 5]], Some("hi")).check(),
            Ok(())
        );
        assert!(shape(ShapeKind::Text, vec![[5, 5]], Some(" "))
            .check()
            .is_err());
        assert!(shape(ShapeKind::Text, vec![[5, 5]], None).check().is_err());
        assert!(shape(ShapeKind::Pen, vec![[5, 5]], Some("x"))
            .check()
            .is_err());
        let mut bad = shape(ShapeKind::Pen, vec![[0, 0]], None);
        for color in ["red", "#12345", "#12345g", "1234567"] {
            bad.color = color.into();
            assert!(bad.check().is_err(), "{color}");
        }
        bad.color = "#000000".into();
        bad.width = 0;
        assert!(bad.check().is_err());
    }

    #[test]
    fn ops_are_tagged_and_unknown_fields_refused() {
        let op: BoardOp = serde_json::from_str(
            r##"{"action":"draw","shape":{"kind":"line","color":"#000000","width":2,"points":[[0,0],[5,5]]}}"##,
        )
        .unwrap();
        assert!(matches!(op, BoardOp::Draw { .. }));
        assert!(serde_json::from_str::<BoardOp>(r#"{"action":"erase","ids":[1],"x":1}"#).is_err());
    }
}
