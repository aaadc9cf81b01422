//! The one duration syntax of regops, for every flag and every spec field: Go's
//! `time.ParseDuration`, which kubectl, client-go and Kubernetes' own fields use (`90s`, `5m`,
//! `1h30m`, `1.5h`, `300ms`), plus `d` for days (`14d`, as the spec's `warnBefore` has it).
//!
//! Two entry points differ only in a bare number: [`parse_flag`] takes a whole number as
//! seconds, as kubectl's `--request-timeout` does (so `--lock-duration 15` keeps working);
//! [`parse`] (spec fields) refuses it, since a spec that says `refreshBefore: 30` means
//! something a reader cannot tell.

use std::time::Duration;

/// The syntax of a spec's duration field for the JSON Schema: one or more numbers with a unit,
/// as [`parse`] reads them (a schema cannot say "whole seconds" or "not zero"; the decoder
/// does).
pub const SCHEMA_PATTERN: &str = r"^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d))+$";

/// The longest duration regops accepts anywhere: ten years.
pub const MAX: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Why a duration was refused, said as the rest of a sentence about it ("`--wait 5x` has an
/// unknown unit ...").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("is empty (a duration is written 90s, 5m or 1h30m)")]
    Empty,
    #[error("is not a duration (one is written 90s, 5m or 1h30m)")]
    NotADuration,
    #[error("has a number without a unit (ns, us, ms, s, m, h or d)")]
    NoUnit,
    #[error("has an unknown unit `{0}` (ns, us, ms, s, m, h or d)")]
    UnknownUnit(String),
    #[error("is longer than ten years")]
    TooLong,
    #[error("must be longer than zero")]
    Zero,
    #[error("is not a whole number of seconds")]
    NotWholeSeconds,
}

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        "d" => 86_400 * 1_000_000_000,
        _ => return None,
    })
}

/// A duration in Go's syntax: one or more decimal numbers, each with an optional fraction and
/// a unit (`ns`, `us`, `ms`, `s`, `m`, `h`, `d`), such as `1h30m` or `2.5s`; `0` alone is zero.
/// No sign: regops has no negative durations.
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut rest = text;
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(DurationError::NotADuration);
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::NoUnit);
        }
        let scale = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit(unit.to_string()))?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| DurationError::TooLong)?
        };
        let mut nanos = whole.checked_mul(scale).ok_or(DurationError::TooLong)?;
        // The fraction, digit by digit, to the nanosecond (as Go does, without floats).
        let mut place = scale;
        for d in fraction.bytes() {
            place /= 10;
            nanos += u128::from(d - b'0') * place;
        }
        total = total.checked_add(nanos).ok_or(DurationError::TooLong)?;
        rest = next;
    }
    let max = MAX.as_nanos();
    if total > max {
        return Err(DurationError::TooLong);
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::TooLong)?;
    let sub = u32::try_from(total % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// A command-line duration: [`parse`], or a whole number of seconds (`15`, as kubectl takes
/// `--request-timeout`). Zero is refused: no regops flag means "never" by it.
pub fn parse_flag(s: &str) -> Result<Duration, DurationError> {
    let text = s.trim();
    let d = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => parse(text)?,
    };
    if d.is_zero() {
        return Err(DurationError::Zero);
    }
    if d > MAX {
        return Err(DurationError::TooLong);
    }
    Ok(d)
}

/// A spec field's duration in whole seconds (`14d`, `72h`, `1h30m`, `90s`), longer than zero.
pub fn whole_seconds(s: &str) -> Result<u64, DurationError> {
    let d = parse(s)?;
    if d.subsec_nanos() != 0 {
        return Err(DurationError::NotWholeSeconds);
    }
    if d.is_zero() {
        return Err(DurationError::Zero);
    }
    Ok(d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forms of Go's own tests for `time.ParseDuration` (src/time/time_test.go,
    /// parseDurationTests) that have no sign, plus days.
    #[test]
    fn go_forms() {
        let ok = [
            ("0", Duration::ZERO),
            ("5s", Duration::from_secs(5)),
            ("30s", Duration::from_secs(30)),
            ("1478s", Duration::from_secs(1478)),
            ("5.0s", Duration::from_secs(5)),
            ("5.6s", Duration::from_millis(5600)),
            ("5.s", Duration::from_secs(5)),
            (".5s", Duration::from_millis(500)),
            ("1.004s", Duration::from_millis(1004)),
            ("100.00100s", Duration::from_micros(100_001_000)),
            ("10ns", Duration::from_nanos(10)),
            ("11us", Duration::from_micros(11)),
            ("12µs", Duration::from_micros(12)),
            ("13ms", Duration::from_millis(13)),
            ("14s", Duration::from_secs(14)),
            ("15m", Duration::from_secs(900)),
            ("16h", Duration::from_secs(16 * 3600)),
            ("3h30m", Duration::from_secs(3 * 3600 + 1800)),
            ("1h30m", Duration::from_secs(5400)),
            ("10.5s4m", Duration::from_millis(4 * 60_000 + 10_500)),
            (
                "2h45m0.5s",
                Duration::from_millis((2 * 3600 + 45 * 60) * 1000 + 500),
            ),
            ("1h1m1s1ms1us1ns", Duration::new(3661, 1_001_001)),
            ("14d", Duration::from_secs(14 * 86_400)),
            ("1.5h", Duration::from_secs(5400)),
        ];
        for (text, want) in ok {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        for bad in [
            "", "3", "-5s", "+5s", ".s", "s", "5x", "1h30", "1.2.3s", "5 s", "99999d",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn flags_take_whole_seconds_and_refuse_zero() {
        assert_eq!(parse_flag("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_flag("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_flag("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_flag("0").is_err());
        assert!(parse_flag("0s").is_err());
        assert!(parse_flag("1.5").is_err(), "a bare fraction has no unit");
        assert!(parse_flag("-1").is_err());
    }

    #[test]
    fn spec_fields_are_whole_seconds_with_a_unit() {
        assert_eq!(whole_seconds("14d"), Ok(14 * 86_400));
        assert_eq!(whole_seconds("72h"), Ok(72 * 3_600));
        assert_eq!(whole_seconds("1h30m"), Ok(5_400));
        assert_eq!(whole_seconds("1.5d"), Ok(129_600));
        assert_eq!(whole_seconds("90s"), Ok(90));
        assert!(whole_seconds("14").is_err());
        assert!(whole_seconds("1.5s").is_err());
        assert!(whole_seconds("0s").is_err());
        assert!(whole_seconds("d").is_err());
        assert!(whole_seconds("").is_err());
        assert!(whole_seconds("99999d").is_err());
        assert!(whole_seconds("7é").is_err());
    }
}
