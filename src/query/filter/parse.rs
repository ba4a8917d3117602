//! The `filter` parser: recursive descent over the grammar in the module above, bounded so that
//! hostile input costs at most a linear scan of a few kilobytes.

use super::{Condition, Filter, Operand, Operator};
use crate::query::error::QueryError;

/// Longer filters are refused before they are read. Large enough for `id[in]:[…]` with a few
/// hundred ids; a request of its size is already unusual.
pub const MAX_FILTER_BYTES: usize = 32 * 1024;

/// How deep `and(`, `or(` and `not(` may nest. Real filters nest two or three levels; the bound
/// keeps the parser's recursion (and the SQL built from it) shallow.
pub const MAX_NESTING: usize = 16;

/// How many conditions one filter may hold: SQLite refuses expressions deeper than 1000 nodes,
/// and every condition is one more node of the statement's `WHERE`.
pub const MAX_CONDITIONS: usize = 256;

/// How many values (scalars and list items together) one filter may hold, each a bound parameter.
pub const MAX_VALUES: usize = 1000;

/// Parses a whole `filter` parameter. A top-level list of several expressions is their `and`.
pub fn parse(text: &str) -> Result<Filter, QueryError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(QueryError::filter(format!(
            "'filter' invalid: it is {} bytes long, and at most {MAX_FILTER_BYTES} are accepted",
            text.len()
        )));
    }
    let mut parser = Parser { text, pos: 0, conditions: 0, values: 0 };
    let mut items = parser.list(0)?;
    parser.skip_ws();
    if parser.pos < text.len() {
        let surplus = text[parser.pos..].matches(')').count().max(1);
        return Err(parser.fail(&format!("unexpected ')': {}", missing_brackets(surplus, "open"))));
    }
    Ok(if items.len() == 1 { items.remove(0) } else { Filter::And(items) })
}

/// Twenty's words for unbalanced parentheses: `1 close bracket is missing in the query`.
fn missing_brackets(count: usize, kind: &str) -> String {
    let verb = if count > 1 { "s are" } else { " is" };
    format!("{count} {kind} bracket{verb} missing in the query")
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    conditions: usize,
    values: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// An error at the current position (counted in characters from 1, as people count).
    fn fail(&self, what: &str) -> QueryError {
        let at = self.text[..self.pos].chars().count() + 1;
        QueryError::filter(format!("'filter' invalid at character {at}: {what}"))
    }

    /// Comma-separated expressions, up to a `)` (left for the caller) or the end.
    fn list(&mut self, depth: usize) -> Result<Vec<Filter>, QueryError> {
        let mut items = vec![self.expression(depth)?];
        loop {
            self.skip_ws();
            match self.peek() {
                Some(',') => {
                    self.pos += 1;
                    items.push(self.expression(depth)?);
                }
                None | Some(')') => return Ok(items),
                Some(other) => return Err(self.fail(&format!("expected ',' or ')', not '{other}'"))),
            }
        }
    }

    fn identifier(&mut self) -> &str {
        let start = self.pos;
        let rest = self.rest();
        let first_ok = rest.bytes().next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        let len = if first_ok {
            rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count()
        } else {
            0
        };
        self.pos += len;
        &self.text[start..self.pos]
    }

    fn path(&mut self) -> Result<Vec<String>, QueryError> {
        let mut path = Vec::new();
        loop {
            let segment = self.identifier();
            if segment.is_empty() {
                let what = if path.is_empty() {
                    "expected a field name, or and(, or( or not(".to_owned()
                } else {
                    format!("expected a sub-field name after '{}.'", path.join("."))
                };
                return Err(self.fail(&what));
            }
            path.push(segment.to_owned());
            if self.peek() != Some('.') {
                return Ok(path);
            }
            self.pos += 1;
        }
    }

    fn expression(&mut self, depth: usize) -> Result<Filter, QueryError> {
        self.skip_ws();
        let start = self.pos;
        let path = self.path()?;
        self.skip_ws();
        match self.peek() {
            Some('(') => self.group(&path, depth),
            Some('[') => self.condition(path, start),
            _ => Err(self.fail(&format!("expected '[' after '{}'", path.join(".")))),
        }
    }

    /// `and(…)`, `or(…)`, `not(…)`; the `(` is next.
    fn group(&mut self, name: &[String], depth: usize) -> Result<Filter, QueryError> {
        let conjunction = match name {
            [word] if matches!(word.as_str(), "and" | "or" | "not") => word.as_str(),
            _ => return Err(self.fail(&format!("'{}(' is not and(, or( or not(", name.join(".")))),
        };
        if depth == MAX_NESTING {
            return Err(self.fail(&format!("and(, or( and not( nest deeper than {MAX_NESTING} levels")));
        }
        self.pos += 1;
        let mut items = self.list(depth + 1)?;
        if self.peek() != Some(')') {
            return Err(self.fail(&missing_brackets(depth + 1, "close")));
        }
        self.pos += 1;
        match conjunction {
            "and" => Ok(Filter::And(items)),
            "or" => Ok(Filter::Or(items)),
            _ if items.len() == 1 => Ok(Filter::Not(Box::new(items.remove(0)))),
            _ => Err(self.fail("'not' conjunction should contain only 1 condition. eg: not(field[eq]:1)")),
        }
    }

    /// `path[operator]:value`; the `[` is next.
    fn condition(&mut self, path: Vec<String>, start: usize) -> Result<Filter, QueryError> {
        self.pos += 1;
        let name_start = self.pos;
        let Some(name_len) = self.rest().find(']') else {
            return Err(self.fail(&format!("expected ']' after '{}[…'", path.join("."))));
        };
        let name = &self.text[name_start..name_start + name_len];
        let Some(operator) = Operator::from_name(name) else {
            let known: Vec<&str> = Operator::ALL.iter().map(|op| op.name()).collect();
            let shown: String = self.text[start..name_start + name_len].chars().take(80).collect();
            return Err(self.fail(&format!("comparator '{name}' in '{shown}]' not in {}", known.join(", "))));
        };
        self.pos += name_len + 1;
        self.skip_ws();
        if self.peek() != Some(':') {
            return Err(self.fail(&format!("expected ':' after '{}[{name}]'", path.join("."))));
        }
        self.pos += 1;
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(self.fail(&format!("more than {MAX_CONDITIONS} conditions")));
        }
        let value = if operator.takes_list() {
            Operand::List(self.list_value(operator)?)
        } else {
            Operand::Scalar(self.scalar(false)?)
        };
        Ok(Filter::Condition(Condition { path, operator, value }))
    }

    fn list_value(&mut self, operator: Operator) -> Result<Vec<String>, QueryError> {
        self.skip_ws();
        if self.peek() != Some('[') {
            let name = operator.name();
            return Err(
                self.fail(&format!("'{name}' takes an array value, eg: 'field[{name}]:[value_1,value_2]'"))
            );
        }
        self.pos += 1;
        let mut values = Vec::new();
        self.skip_ws();
        if self.peek() == Some(']') {
            self.pos += 1;
            return Ok(values);
        }
        loop {
            values.push(self.scalar(true)?);
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
                    return Ok(values);
                }
                _ => return Err(self.fail("expected ',' or ']' in the array value")),
            }
        }
    }

    /// A quoted or bare scalar. In a list, a `]` of its own ends it too.
    fn scalar(&mut self, in_list: bool) -> Result<String, QueryError> {
        self.values += 1;
        if self.values > MAX_VALUES {
            return Err(self.fail(&format!("more than {MAX_VALUES} values")));
        }
        self.skip_ws();
        match self.peek() {
            Some(quote @ ('"' | '\'')) => self.quoted(quote, in_list),
            _ => self.bare(in_list),
        }
    }

    fn quoted(&mut self, quote: char, in_list: bool) -> Result<String, QueryError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut chars = self.rest().char_indices();
        let end = loop {
            match chars.next() {
                Some((i, c)) if c == quote => break i + c.len_utf8(),
                Some((_, '\\')) => match chars.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => break usize::MAX,
                },
                Some((_, c)) => value.push(c),
                None => break usize::MAX,
            }
        };
        if end == usize::MAX {
            self.pos = start;
            return Err(self.fail(&format!("the value starting with {quote} has no closing {quote}")));
        }
        self.pos += end;
        self.skip_ws();
        match self.peek() {
            None | Some(',' | ')') => Ok(value),
            Some(']') if in_list => Ok(value),
            Some(other) => Err(self.fail(&format!("unexpected '{other}' after a quoted value"))),
        }
    }

    /// Text up to a `,` or `)` (or, in a list, `]`) outside its own parentheses and brackets.
    fn bare(&mut self, in_list: bool) -> Result<String, QueryError> {
        let (mut parens, mut brackets) = (0usize, 0usize);
        let rest = self.rest();
        let mut end = rest.len();
        for (i, c) in rest.char_indices() {
            match c {
                '(' => parens += 1,
                ')' if parens == 0 => {
                    end = i;
                    break;
                }
                ')' => parens -= 1,
                '[' => brackets += 1,
                ']' if brackets == 0 && in_list => {
                    end = i;
                    break;
                }
                ']' => brackets = brackets.saturating_sub(1),
                ',' if parens == 0 && brackets == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let value = rest[..end].trim().to_owned();
        if value.is_empty() {
            return Err(self.fail("expected a value"));
        }
        self.pos += end;
        Ok(value)
    }
}
