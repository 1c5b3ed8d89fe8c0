//! c2sp.org/tlog-tiles: tile coordinates, their paths, and which tiles a tree size needs.
//!
//! Tiles have height 8: a tile at level `L` holds up to 256 consecutive hashes of tree level `8L`, and
//! an entry bundle holds the (up to 256) entries whose leaf hashes are in the level-0 tile of the same
//! index. A partial tile of width `W` is always a prefix of the full tile, so its bytes never change.

/// Hashes (or entries) per full tile.
pub const WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const HEIGHT: u32 = 8;
/// The deepest hash-tile level a 64-bit tree can need (8 × 8 = 64 tree levels).
pub const MAX_LEVEL: u8 = 7;

/// One tile: `level` is `None` for an entry bundle (`tile/entries/...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    /// Hash-tile level, or `None` for entry bundles.
    pub level: Option<u8>,
    /// The tile's index at its level.
    pub index: u64,
    /// 1..=256; 256 is a full tile.
    pub width: u16,
}

impl TileId {
    /// The tile's path below the log prefix, e.g. `tile/0/x001/234.p/12` or `tile/entries/005`.
    pub fn path(&self) -> String {
        let level = match self.level {
            Some(l) => l.to_string(),
            None => "entries".to_owned(),
        };
        let mut p = format!("tile/{level}/{}", index_path(self.index));
        if u64::from(self.width) < WIDTH {
            p.push_str(&format!(".p/{}", self.width));
        }
        p
    }

    /// Parses a path below the log prefix (`tile/...`); `None` if it is not a well-formed tile path.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix("tile/")?;
        let (level_part, rest) = rest.split_once('/')?;
        let level = match level_part {
            "entries" => None,
            l if l.len() == 1 && l.as_bytes()[0].is_ascii_digit() => {
                let v = l.parse::<u8>().ok()?;
                (v <= MAX_LEVEL).then_some(v)?;
                Some(v)
            }
            _ => return None,
        };
        let (index_part, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                // Decimal without leading zeros, 1..=255.
                if w.is_empty() || w.starts_with('0') || !w.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let w = w.parse::<u16>().ok().filter(|w| (1..256).contains(w))?;
                (i, w)
            }
            None => (rest, WIDTH as u16),
        };
        let index = parse_index(index_part)?;
        Some(Self {
            level,
            index,
            width,
        })
    }
}

/// `1234067` → `x001/x234/067`: groups of three digits, all but the last prefixed with `x`.
fn index_path(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn parse_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let (last, init) = parts.split_last()?;
    let mut n: u64 = 0;
    for (i, p) in init.iter().enumerate() {
        let digits = p.strip_prefix('x')?;
        let v = three_digits(digits)?;
        // The first group may not be x000 (no leading zero groups).
        if i == 0 && v == 0 {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(v)?;
    }
    n.checked_mul(1000)?.checked_add(three_digits(last)?)
}

fn three_digits(s: &str) -> Option<u64> {
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// How many hashes of tree level `8·level` a tree of `size` leaves has.
pub fn hashes_at(level: u8, size: u64) -> u64 {
    size >> (HEIGHT * u32::from(level))
}

/// The tiles at `level` (`None`: entry bundles) that the tree of `size` leaves consists of, in order;
/// the last one may be partial.
pub fn tiles_for(level: Option<u8>, size: u64) -> impl Iterator<Item = TileId> {
    let count = hashes_at(level.unwrap_or(0), size);
    let full = count / WIDTH;
    let rest = count % WIDTH;
    (0..full)
        .map(move |index| TileId {
            level,
            index,
            width: WIDTH as u16,
        })
        .chain((rest > 0).then_some(TileId {
            level,
            index: full,
            width: rest as u16,
        }))
}

/// The hash-tile levels a tree of `size` leaves has (level 0 always, while `size` > 0).
pub fn levels(size: u64) -> impl Iterator<Item = u8> {
    (0..=MAX_LEVEL).take_while(move |&l| hashes_at(l, size) > 0)
}

/// The tile (with the width `size` implies) holding hash `index` of tree level `8·level`.
pub fn tile_of(level: u8, index: u64, size: u64) -> TileId {
    let tile = index / WIDTH;
    let count = hashes_at(level, size);
    let width = if count >= (tile + 1) * WIDTH {
        WIDTH
    } else {
        count - tile * WIDTH
    };
    TileId {
        level: Some(level),
        index: tile,
        width: width as u16,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        let t = |level, index, width| TileId {
            level,
            index,
            width,
        };
        assert_eq!(t(Some(0), 1_234_067, 256).path(), "tile/0/x001/x234/067");
        assert_eq!(t(Some(1), 5, 8).path(), "tile/1/005.p/8");
        assert_eq!(t(None, 0, 256).path(), "tile/entries/000");
        assert_eq!(t(None, 1000, 3).path(), "tile/entries/x001/000.p/3");
        for id in [
            t(Some(0), 1_234_067, 256),
            t(Some(1), 5, 8),
            t(None, 1000, 3),
        ] {
            assert_eq!(TileId::parse(&id.path()), Some(id));
        }
    }

    #[test]
    fn malformed_paths_are_refused() {
        for p in [
            "tile/0/1",
            "tile/0/x000/001",
            "tile/0/001.p/0",
            "tile/0/001.p/256",
            "tile/0/001.p/08",
            "tile/8/001",
            "tile/entries/01",
            "tile/0/x01/001",
            "tile/0/001/",
            "tile/../001",
            "tiles/0/001",
        ] {
            assert_eq!(TileId::parse(p), None, "{p}");
        }
    }

    #[test]
    fn tiles_for_a_size() {
        let l0: Vec<_> = tiles_for(Some(0), 70_000).collect();
        assert_eq!(l0.len(), 274);
        assert_eq!(l0.last().unwrap().width, (70_000 % 256) as u16);
        let l1: Vec<_> = tiles_for(Some(1), 70_000).collect();
        assert_eq!(l1.len(), 2);
        assert_eq!(l1[1].width, (273 - 256) as u16);
        assert_eq!(levels(70_000).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(levels(255).collect::<Vec<_>>(), vec![0]);
        assert_eq!(levels(0).count(), 0);
    }
}
