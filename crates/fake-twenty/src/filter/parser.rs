//! The `filter` grammar, as Twenty's REST API reads it:
//!
//! ```text
//! filter     = list                          a top-level list means and(…)
//! list       = expression ("," expression)*
//! expression = ("and" | "or" | "not") "(" list ")"   not(…) takes one expression
//!            | path "[" operator "]" ":" value
//! path       = name ("." name)*              a dotted path reaches into a composite field
//! value      = "[" scalar ("," scalar)* "]"  for in and containsAny (may be empty)
//!            | "NULL" | "NOT_NULL"           for is
//!            | scalar
//! scalar     = '"' any but '"' '"' | "'" any but "'" "'" | bare text up to "," or ")"
//! ```
//!
//! Twenty strips the quotes around a value and unescapes nothing; so does this parser. Inside
//! quotes, commas and parentheses are text.

use super::{Comparison, Filter, Operand, Test, TextMatch};

/// Parses a whole `filter` parameter.
pub(super) fn parse(text: &str) -> Result<Filter, String> {
    // The list reads to the end of the text, or fails.
    let mut list = Parser { text, pos: 0 }.list(None)?;
    Ok(if list.len() == 1 { list.remove(0) } else { Filter::And(list) })
}

/// An operator, read before its value (whose shape depends on it).
enum Operator {
    Compare(Comparison),
    In,
    ContainsAny,
    Is,
    Text(TextMatch),
}

impl Operator {
    fn named(name: &str) -> Option<Operator> {
        Some(match name {
            "eq" => Operator::Compare(Comparison::Eq),
            "neq" => Operator::Compare(Comparison::Neq),
            "gt" => Operator::Compare(Comparison::Gt),
            "gte" => Operator::Compare(Comparison::Gte),
            "lt" => Operator::Compare(Comparison::Lt),
            "lte" => Operator::Compare(Comparison::Lte),
            "in" => Operator::In,
            "containsAny" => Operator::ContainsAny,
            "is" => Operator::Is,
            "like" => Operator::Text(TextMatch::Like),
            "ilike" => Operator::Text(TextMatch::Ilike),
            "startsWith" => Operator::Text(TextMatch::StartsWith),
            "endsWith" => Operator::Text(TextMatch::EndsWith),
            _ => return None,
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }

    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("invalid filter {:?}: {what} at position {}", self.text, self.pos))
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(&format!("expected '{}'", char::from(byte)))
        }
    }

    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Comma-separated expressions up to `close` (consumed) or the end.
    fn list(&mut self, close: Option<u8>) -> Result<Vec<Filter>, String> {
        let mut items = vec![self.expression()?];
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    items.push(self.expression()?);
                }
                next if next == close => {
                    if close.is_some() {
                        self.pos += 1;
                    }
                    return Ok(items);
                }
                _ if close == Some(b')') => return self.fail("expected ',' or ')'"),
                _ => return self.fail("expected ',' or the end of the filter"),
            }
        }
    }

    fn expression(&mut self) -> Result<Filter, String> {
        let name = self.word().to_owned();
        if name.is_empty() {
            return self.fail("expected a field name or and/or/not");
        }
        self.skip_ws();
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let mut items = self.list(Some(b')'))?;
                match name.as_str() {
                    "and" => Ok(Filter::And(items)),
                    "or" => Ok(Filter::Or(items)),
                    "not" if items.len() == 1 => Ok(Filter::Not(Box::new(items.remove(0)))),
                    "not" => self.fail("not() takes one condition"),
                    _ => self.fail(&format!("unknown combinator {name:?}")),
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let operator_name = self.word().to_owned();
                let Some(operator) = Operator::named(&operator_name) else {
                    return self.fail(&format!("unknown operator {operator_name:?}"));
                };
                self.expect(b']')?;
                self.expect(b':')?;
                let path: Vec<String> = name.split('.').map(str::to_owned).collect();
                if path.iter().any(String::is_empty) {
                    return self.fail(&format!("invalid field {name:?}"));
                }
                let test = match operator {
                    Operator::Compare(comparison) => {
                        Test::Compare(comparison, Operand::new(self.scalar(b",)")?))
                    }
                    Operator::In => Test::In(self.operand_list()?),
                    Operator::ContainsAny => Test::ContainsAny(self.operand_list()?),
                    Operator::Is => match self.scalar(b",)")?.as_str() {
                        "NULL" => Test::IsNull(true),
                        "NOT_NULL" => Test::IsNull(false),
                        other => return self.fail(&format!("is takes NULL or NOT_NULL, not {other:?}")),
                    },
                    Operator::Text(how) => Test::Text(how, self.scalar(b",)")?),
                };
                Ok(Filter::Condition { path, test, kind: None })
            }
            _ => self.fail("expected '(' or '['"),
        }
    }

    /// `[a, "b", …]`, possibly empty.
    fn operand_list(&mut self) -> Result<Vec<Operand>, String> {
        self.expect(b'[')?;
        let mut operands = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(operands);
        }
        loop {
            operands.push(Operand::new(self.scalar(b",]")?));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(operands);
                }
                _ => return self.fail("expected ',' or ']'"),
            }
        }
    }

    /// A value in double or single quotes (taken as it is, quotes stripped), or bare text up to one
    /// of `ends`, trimmed.
    fn scalar(&mut self, ends: &[u8]) -> Result<String, String> {
        self.skip_ws();
        if let Some(quote @ (b'"' | b'\'')) = self.peek() {
            let start = self.pos + 1;
            let Some(length) = self.text[start..].find(char::from(quote)) else {
                return self.fail("unterminated string");
            };
            self.pos = start + length + 1;
            return Ok(self.text[start..start + length].to_owned());
        }
        let start = self.pos;
        while self.peek().is_some_and(|b| !ends.contains(&b)) {
            self.pos += 1;
        }
        let value = self.text[start..self.pos].trim();
        if value.is_empty() {
            return self.fail("expected a value");
        }
        Ok(value.to_owned())
    }
}
