//! Reading numbers.
//!
//! An integer literal (no fraction, no exponent) is read digit by digit into an
//! integer as it is scanned; only other literals go through the standard
//! library's correctly rounded `f64` parse. Either way the result is the
//! normalized [`Number`] (see the parent module), and the literal is checked
//! against the one spelling RFC 8785 gives that number.

use serde_json::Number;

use super::parser::Parser;
use super::{JsonError, MAX_SAFE, number_from_f64};

/// Without leading zeros, an integer of more digits than this is at least
/// 10^16, beyond 2^53; up to this many fit a `u64` without overflow.
const MAX_SAFE_DIGITS: usize = 16;

impl Parser<'_> {
    /// Reads digits at the cursor (at least one), returning how many.
    fn digits(&mut self) -> Result<usize, JsonError> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.syntax("expected a digit"));
        }
        Ok(self.pos - start)
    }

    pub(super) fn number(&mut self) -> Result<Number, JsonError> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_digits = match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                1
            }
            Some(b'1'..=b'9') => self.digits()?,
            _ => return Err(self.syntax("expected a digit")),
        };
        let int_end = self.pos;
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        let literal = self.slice(start, self.pos)?;
        let out_of_range = || JsonError::NumberOutOfRange(literal.to_owned());
        if integer {
            if int_digits > MAX_SAFE_DIGITS {
                return Err(out_of_range());
            }
            let magnitude = self.bytes[int_start..int_end]
                .iter()
                .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
            if magnitude > MAX_SAFE {
                return Err(out_of_range());
            }
            // `-0` is the integer 0, which RFC 8785 writes `0`.
            self.canonical &= !(negative && magnitude == 0);
            // Within ±2^53, so the conversion and the negation are exact.
            let magnitude = magnitude as i64;
            return Ok(Number::from(if negative { -magnitude } else { magnitude }));
        }
        // The grammar above is a subset of what `f64::from_str` accepts, and that
        // parse is correctly rounded.
        let f: f64 = literal.parse().map_err(|_| out_of_range())?;
        let number = number_from_f64(f, literal)?;
        // An integral value is written without fraction or exponent; any other
        // is written as ECMAScript prints the double.
        if self.canonical {
            self.canonical = number.is_f64()
                && ryu_js::Buffer::new().format_finite(f).as_bytes() == literal.as_bytes();
        }
        Ok(number)
    }
}
