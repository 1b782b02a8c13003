//! CPython's three line-table formats, decoded the way the interpreter
//! itself does (`PyCode_Addr2Line` of each version), so a line found here is
//! the line `frame.f_lineno` would have said. The tables come from an
//! untrusted process: every loop is bounded by the table's length, and
//! garbage gives a wrong line or None, never a panic.

/// 3.6–3.9 `co_lnotab`: (byte increment, signed line increment) pairs;
/// `lasti` is a byte offset (-1 before the first instruction).
pub(crate) fn lnotab(table: &[u8], first_line: u32, lasti: i32) -> Option<u32> {
    let mut line = i64::from(first_line);
    let mut address = 0i64;
    for pair in table.chunks_exact(2) {
        address += i64::from(pair[0]);
        if address > i64::from(lasti) {
            break;
        }
        line += i64::from(pair[1] as i8);
    }
    u32::try_from(line).ok()
}

/// 3.10 `co_linetable`: (byte length, signed line delta) pairs, a delta of
/// -128 meaning "no line" for that range; `offset` is in bytes.
pub(crate) fn linetable_310(table: &[u8], first_line: u32, offset: i64) -> Option<u32> {
    let mut line = i64::from(first_line);
    let mut end = 0i64;
    for pair in table.chunks_exact(2) {
        let start = end;
        end += i64::from(pair[0]);
        let delta = pair[1] as i8;
        let current = (delta != -128).then(|| {
            line += i64::from(delta);
            line
        });
        if start <= offset && offset < end {
            return current.and_then(|line| u32::try_from(line).ok());
        }
    }
    None
}

/// 3.11+ location table (`Objects/locations.md` in CPython): entries of
/// `1 kind:4 length-1:3` then the kind's varints; `index` is in code units.
pub(crate) fn location_table(table: &[u8], first_line: u32, index: i64) -> Option<u32> {
    let mut reader = Reader { table, at: 0 };
    let mut line = i64::from(first_line);
    let mut start = 0i64;
    while let Some(head) = reader.byte() {
        let kind = (head >> 3) & 15;
        let length = i64::from(head & 7) + 1;
        let current = match kind {
            15 => None,
            14 => {
                line += reader.signed()?;
                // End line, column and end column: not needed for the line.
                for _ in 0..3 {
                    reader.unsigned()?;
                }
                Some(line)
            }
            13 => {
                line += reader.signed()?;
                Some(line)
            }
            10..=12 => {
                line += i64::from(kind - 10);
                reader.skip(2)?;
                Some(line)
            }
            _ => {
                reader.skip(1)?;
                Some(line)
            }
        };
        if start <= index && index < start + length {
            return current.and_then(|line| u32::try_from(line).ok());
        }
        start += length;
    }
    None
}

struct Reader<'a> {
    table: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.table.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn skip(&mut self, count: usize) -> Option<()> {
        self.at += count;
        (self.at <= self.table.len()).then_some(())
    }

    /// 6-bit groups, least significant first, 0x40 set while more follow.
    /// CPython's values fit 32 bits: a longer one is garbage.
    fn unsigned(&mut self) -> Option<u64> {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            value |= u64::from(byte & 63) << shift;
            if byte & 64 == 0 {
                return Some(value);
            }
            shift += 6;
            if shift > 30 {
                return None;
            }
        }
    }

    /// The sign in the lowest bit, the magnitude above it.
    fn signed(&mut self) -> Option<i64> {
        let value = self.unsigned()?;
        let magnitude = (value >> 1) as i64;
        Some(if value & 1 == 1 {
            -magnitude
        } else {
            magnitude
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lnotab_lines_start_where_their_bytes_do() {
        // Line 10 for bytes 0..6, 12 for 6..8, then 11 (a negative delta).
        let table = [6, 2, 2, 0xff];
        assert_eq!(lnotab(&table, 10, -1), Some(10));
        assert_eq!(lnotab(&table, 10, 4), Some(10));
        assert_eq!(lnotab(&table, 10, 6), Some(12));
        assert_eq!(lnotab(&table, 10, 8), Some(11));
        assert_eq!(lnotab(&[], 10, 40), Some(10));
    }

    #[test]
    fn the_310_table_has_ranges_without_a_line() {
        // Bytes 0..4 line 3, 4..6 no line, 6..10 line 5.
        let table = [4, 2, 2, 0x80, 4, 2];
        assert_eq!(linetable_310(&table, 1, 0), Some(3));
        assert_eq!(linetable_310(&table, 1, 4), None);
        assert_eq!(linetable_310(&table, 1, 8), Some(5));
        assert_eq!(linetable_310(&table, 1, 10), None);
    }

    #[test]
    fn location_table_kinds_move_the_line_as_cpython_does() {
        let table = [
            0x80 | (13 << 3), // one unit, no columns, line +1 (svarint 2)
            2,
            0x80 | (11 << 3) | 1, // two units, one line, +1, two column bytes
            0,
            4,
            0x80 | (15 << 3), // one unit without a location
            0x80 | (14 << 3), // long form: line -2 (svarint 5), three varints
            5,
            0x41, // a two-group varint
            1,
            0,
            0,
            0x80 | (3 << 3), // short form: line unchanged, one column byte
            7,
        ];
        let lines: Vec<_> = (-1..7).map(|i| location_table(&table, 20, i)).collect();
        let expected = [
            None,
            Some(21),
            Some(22),
            Some(22),
            None,
            Some(20),
            Some(20),
            None,
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn truncated_or_endless_varints_are_not_read_past_the_table() {
        assert_eq!(location_table(&[0x80 | (14 << 3), 0x41], 1, 0), None);
        assert_eq!(
            location_table(
                &[0x80 | (13 << 3), 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 1],
                1,
                0
            ),
            None
        );
        assert_eq!(location_table(&[0x80 | (11 << 3)], 1, 0), None);
        assert_eq!(lnotab(&[0, 0x80, 0, 0x80], 1, 0), None);
    }
}
