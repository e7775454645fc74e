//! Kubernetes-style resource quantities (`128Mi`, `1G`, `500m`, `0.5`), as taken by
//! `rkt run --memory/--cpu` and Pod `resources.limits`.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quantity {input:?}: {reason}")]
pub struct QuantityError {
    pub input: String,
    pub reason: &'static str,
}

fn split_number(input: &str) -> Result<(f64, &str), QuantityError> {
    let err = |reason| QuantityError {
        input: input.to_string(),
        reason,
    };
    let s = input.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(end);
    if num.is_empty() {
        return Err(err("expected a number"));
    }
    let value: f64 = num.parse().map_err(|_| err("expected a number"))?;
    if !value.is_finite() {
        return Err(err("expected a finite number"));
    }
    Ok((value, suffix))
}

/// Bytes from `128Mi`, `1G`, `512k`, `1024` (binary suffixes Ki..Ei, decimal k/K..E,
/// and rkt's bare `M`/`G` meaning decimal as in Kubernetes).
pub fn parse_bytes(input: &str) -> Result<u64, QuantityError> {
    let (value, suffix) = split_number(input)?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => {
            return Err(QuantityError {
                input: input.to_string(),
                reason: "unknown suffix (use Ki, Mi, Gi, or k, M, G)",
            })
        }
    };
    let bytes = value * mult;
    if bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(QuantityError {
            input: input.to_string(),
            reason: "out of range",
        });
    }
    Ok(bytes.ceil() as u64)
}

/// CPU in millicores from `500m`, `2`, `0.5`.
pub fn parse_cpu_millis(input: &str) -> Result<u64, QuantityError> {
    let (value, suffix) = split_number(input)?;
    let millis = match suffix {
        "m" => value,
        "" => value * 1000.0,
        _ => {
            return Err(QuantityError {
                input: input.to_string(),
                reason: "cpu is a number of cores (0.5) or millicores (500m)",
            })
        }
    };
    if !(1.0..=1e9).contains(&millis) {
        return Err(QuantityError {
            input: input.to_string(),
            reason: "out of range",
        });
    }
    Ok(millis.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes() {
        assert_eq!(parse_bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(parse_bytes("128M").unwrap(), 128_000_000);
        assert_eq!(parse_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("1.5Ki").unwrap(), 1536);
        assert!(parse_bytes("12XB").is_err());
        assert!(parse_bytes("Mi").is_err());
        assert!(parse_bytes("0").is_err());
        assert!(parse_bytes("-1").is_err());
    }

    #[test]
    fn cpu() {
        assert_eq!(parse_cpu_millis("500m").unwrap(), 500);
        assert_eq!(parse_cpu_millis("2").unwrap(), 2000);
        assert_eq!(parse_cpu_millis("0.25").unwrap(), 250);
        assert!(parse_cpu_millis("1x").is_err());
        assert!(parse_cpu_millis("0m").is_err());
    }
}
