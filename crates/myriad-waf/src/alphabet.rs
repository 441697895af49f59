//! Sets of bytes: the bytes a request's text is made of, and the bytes a rule could see after
//! its transformations.

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Alphabet([u64; 4]);

impl Alphabet {
    pub const EMPTY: Self = Self([0; 4]);
    pub const ALL: Self = Self([u64::MAX; 4]);

    pub fn of(bytes: &[u8]) -> Self {
        let mut set = Self::EMPTY;
        set.add(bytes);
        set
    }

    /// The printable ASCII bytes (space to `~`) without `excluded`.
    pub fn printable_without(excluded: &[u8]) -> Self {
        let mut set = Self::EMPTY;
        for b in b' '..=b'~' {
            if !excluded.contains(&b) {
                set.insert(b);
            }
        }
        set
    }

    pub fn insert(&mut self, b: u8) {
        self.0[usize::from(b >> 6)] |= 1 << (b & 63);
    }

    pub fn add(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.insert(b);
        }
    }

    pub fn contains(&self, b: u8) -> bool {
        self.0[usize::from(b >> 6)] & (1 << (b & 63)) != 0
    }

    /// Whether every byte of `bytes` is in the set.
    pub fn covers(&self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.contains(b))
    }

    pub fn union(self, other: Self) -> Self {
        let mut out = self;
        for (o, x) in out.0.iter_mut().zip(other.0) {
            *o |= x;
        }
        out
    }

    pub fn with(mut self, b: u8) -> Self {
        self.insert(b);
        self
    }

    pub fn is_subset_of(&self, other: &Self) -> bool {
        self.0.iter().zip(other.0).all(|(a, b)| a & !b == 0)
    }

    /// Whether a byte in `lo..=hi` is in the set.
    pub fn meets(&self, lo: u8, hi: u8) -> bool {
        (lo..=hi).any(|b| self.contains(b))
    }

    pub fn has_non_ascii(&self) -> bool {
        self.0[2] | self.0[3] != 0
    }

    /// The set with each ASCII letter's other case added: rules match case-insensitively
    /// in many ways (`(?i)`, `t:lowercase`, `@pm`), and a set closed under case needs no
    /// care about which.
    pub fn case_closed(mut self) -> Self {
        for b in b'a'..=b'z' {
            let upper = b.to_ascii_uppercase();
            if self.contains(b) || self.contains(upper) {
                self.insert(b);
                self.insert(upper);
            }
        }
        self
    }
}

impl std::fmt::Debug for Alphabet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes: Vec<u8> = (0..=255u8).filter(|&b| self.contains(b)).collect();
        write!(f, "Alphabet({:?})", bytes.escape_ascii().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_of_bytes() {
        let a = Alphabet::of(b"abc");
        assert!(a.covers(b"cab") && !a.covers(b"abd"));
        assert!(a.is_subset_of(&Alphabet::of(b"abcd")));
        assert!(!Alphabet::of(b"abcd").is_subset_of(&a));
        assert!(a.case_closed().covers(b"ABC"));
        assert!(!a.has_non_ascii() && Alphabet::of(&[0xC3]).has_non_ascii());
        assert!(a.meets(b'c', b'z') && !a.meets(b'd', b'z'));
        assert!(Alphabet::ALL.contains(255) && !Alphabet::EMPTY.contains(0));
        let p = Alphabet::printable_without(b"<>");
        assert!(p.covers(b"GET /a?b=c HTTP/1.1") && !p.contains(b'<') && !p.contains(b'\n'));
        assert_eq!(a.union(Alphabet::of(b"z")), Alphabet::of(b"abcz"));
    }
}
