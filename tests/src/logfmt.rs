//! A strict parser of the binaries' logfmt lines (`key=value` pairs separated by one space;
//! a value bare or double-quoted with `\"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` escapes), for
//! tests that check what the processes log. Written from the go-logfmt conventions Prometheus
//! uses, independently of the code that writes the lines.

/// The pairs of one line, in order, values unescaped; an error says where the line is not
/// logfmt.
pub fn parse_line(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            if c == ' ' || c == '"' || c.is_control() {
                return Err(format!("bad key character {c:?} in {line:?}"));
            }
            key.push(c);
            chars.next();
        }
        if key.is_empty() || chars.next() != Some('=') {
            return Err(format!("expected key= in {line:?}"));
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quote in {line:?}")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"') => value.push('"'),
                        Some('\\') => value.push('\\'),
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some('u') => {
                            let hex: String = chars.by_ref().take(4).collect();
                            let c = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| format!("bad \\u{hex} in {line:?}"))?;
                            value.push(c);
                        }
                        other => return Err(format!("bad escape {other:?} in {line:?}")),
                    },
                    Some(c) if c.is_control() => {
                        return Err(format!("raw control character {c:?} in {line:?}"));
                    }
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                if c == '"' || c == '=' || c.is_control() {
                    return Err(format!("bad bare value character {c:?} in {line:?}"));
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value));
        match chars.next() {
            None => return Ok(pairs),
            Some(' ') => {}
            Some(c) => return Err(format!("expected a space, got {c:?} in {line:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn parses_and_rejects() {
        let p = parse_line(r#"ts=1 msg="a \"b\"\nc" n=3"#).unwrap();
        assert_eq!(p[1], ("msg".into(), "a \"b\"\nc".into()));
        assert_eq!(p[2], ("n".into(), "3".into()));
        assert!(parse_line("2024-01-01 INFO hello").is_err());
        assert!(parse_line("a=\x1b[31mx").is_err());
        assert!(parse_line("a=\"x").is_err());
    }
}
