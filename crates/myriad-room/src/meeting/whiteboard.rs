//! The whiteboard: shapes drawn, erased and undone in the order the meeting takes them, so
//! every client draws the same board. Late joiners ask for the board as of an event and
//! apply the events after it. Whoever may talk may draw (attendees watch, unless on stage);
//! people erase and undo their own shapes, moderators erase anyone's and clear the board.

use std::collections::BTreeMap;
use std::time::Instant;

use myriad_proto::board::{BoardOp, DrawnShape};
use myriad_proto::meeting::Actor;
use myriad_proto::{MeetingEvent, ParticipantId};

use super::{Change, Meeting};
use crate::RoomError;

/// Shapes a board holds at most, and points in all: the board is one reply on the bus.
pub const MAX_SHAPES: usize = 2_000;
pub const MAX_POINTS: usize = 40_000;

#[derive(Debug, Default)]
pub struct Board {
    shapes: BTreeMap<u64, DrawnShape>,
    points: usize,
    pub(super) next_id: u64,
}

impl Board {
    /// Puts a drawn shape on the board (also when a committed one is applied again).
    pub fn put(&mut self, shape: DrawnShape) {
        self.next_id = self.next_id.max(shape.id + 1);
        self.points += shape.shape.points.len();
        if let Some(old) = self.shapes.insert(shape.id, shape) {
            self.points -= old.shape.points.len();
        }
    }

    /// Takes shapes off the board; the ids that were on it.
    pub fn erase(&mut self, ids: &[u64]) -> Vec<u64> {
        ids.iter()
            .filter(|id| {
                self.shapes.remove(id).is_some_and(|s| {
                    self.points -= s.shape.points.len();
                    true
                })
            })
            .copied()
            .collect()
    }

    pub fn clear(&mut self) {
        self.shapes.clear();
        self.points = 0;
    }

    /// Whether `more` points fit in another shape.
    fn has_room(&self, more: usize) -> bool {
        self.shapes.len() < MAX_SHAPES && self.points + more <= MAX_POINTS
    }

    fn latest_of(&self, p: ParticipantId) -> Option<u64> {
        self.shapes.values().rev().find(|s| s.by == p).map(|s| s.id)
    }

    fn owner(&self, id: u64) -> Option<ParticipantId> {
        self.shapes.get(&id).map(|s| s.by)
    }

    /// The shapes in drawing order.
    pub fn shapes(&self) -> Vec<DrawnShape> {
        self.shapes.values().cloned().collect()
    }
}

impl Meeting {
    /// A participant's operation on the board.
    pub fn handle_board(
        &mut self,
        now: Instant,
        p: ParticipantId,
        op: BoardOp,
    ) -> Result<(), RoomError> {
        self.at(now);
        let moderates = self.check_may_draw(p)?;
        match op {
            BoardOp::Draw { shape } => {
                shape.check().map_err(RoomError::InvalidBoard)?;
                if !self.board.has_room(shape.points.len()) {
                    return Err(RoomError::InvalidBoard(
                        "room on the board: erase or clear first",
                    ));
                }
                let drawn = DrawnShape {
                    id: self.board.next_id,
                    by: p,
                    shape,
                };
                self.board.put(drawn.clone());
                self.changes.push(Change::Drawn {
                    shape: drawn.clone(),
                });
                self.emit(MeetingEvent::Drawn { shape: drawn });
            }
            BoardOp::Erase { ids } => {
                if ids.len() > MAX_SHAPES {
                    return Err(RoomError::InvalidBoard("at most 2000 shapes at once"));
                }
                if !moderates
                    && ids
                        .iter()
                        .any(|id| self.board.owner(*id).is_some_and(|o| o != p))
                {
                    return Err(RoomError::Forbidden("only moderators erase others' shapes"));
                }
                self.erase_shapes(&ids);
            }
            BoardOp::Undo => {
                if let Some(id) = self.board.latest_of(p) {
                    self.erase_shapes(&[id]);
                }
            }
            BoardOp::Clear => {
                self.check_moderator(Actor::Participant(p))?;
                self.board.clear();
                self.changes.push(Change::BoardCleared);
                self.emit(MeetingEvent::BoardCleared);
            }
        }
        Ok(())
    }

    fn erase_shapes(&mut self, ids: &[u64]) {
        let ids = self.board.erase(ids);
        if !ids.is_empty() {
            self.changes.push(Change::Erased { ids: ids.clone() });
            self.emit(MeetingEvent::Erased { ids });
        }
    }

    /// Whether `p` may draw (whoever may talk, or moderates); whether it moderates.
    fn check_may_draw(&self, p: ParticipantId) -> Result<bool, RoomError> {
        let who = self
            .participants
            .get(&p)
            .ok_or(RoomError::UnknownParticipant)?;
        if who.permissions.publish || who.permissions.moderate {
            Ok(who.permissions.moderate)
        } else {
            Err(RoomError::Forbidden("attendees watch the whiteboard"))
        }
    }

    /// The board's shapes in drawing order, as of the meeting's latest event.
    pub fn board(&self) -> (Vec<DrawnShape>, myriad_proto::Seq) {
        (self.board.shapes(), self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use myriad_proto::board::{Shape, ShapeKind};

    fn drawn(id: u64, by: u64, points: usize) -> DrawnShape {
        DrawnShape {
            id,
            by: ParticipantId(by),
            shape: Shape {
                kind: ShapeKind::Pen,
                color: "#000000".into(),
                width: 2,
                points: vec![[1, 1]; points],
                text: None,
            },
        }
    }

    #[test]
    fn the_board_counts_its_points_and_finds_ones_latest_shape() {
        let mut b = Board::default();
        b.put(drawn(0, 1, 10));
        b.put(drawn(1, 2, 5));
        b.put(drawn(2, 1, 7));
        assert_eq!((b.points, b.next_id), (22, 3));
        assert_eq!(b.latest_of(ParticipantId(1)), Some(2));
        assert_eq!(b.erase(&[2, 9]), [2]);
        assert_eq!(b.latest_of(ParticipantId(1)), Some(0));
        assert_eq!(b.points, 15);
        assert!(b.has_room(MAX_POINTS - 15));
        assert!(!b.has_room(MAX_POINTS - 14));
        b.clear();
        assert_eq!((b.points, b.shapes().len(), b.next_id), (0, 0, 3));
    }
}
