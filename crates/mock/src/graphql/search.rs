//! Shopify's search syntax, the part ferry uses: `field:value` terms joined by spaces (AND)
//! and by `OR` (AND binds tighter: `a b OR c` is `(a b) OR c`), with `:>`, `:>=`, `:<`, `:<=`
//! on dates and numbers, quoted values, and `*` as a prefix wildcard. Unknown fields are
//! ignored with a warning, as the real API does.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone)]
struct Term {
    field: Option<String>,
    cmp: Cmp,
    value: String,
}

/// A value of a searchable field.
pub(crate) enum Field<'a> {
    Str(&'a str),
    Time(i64),
    Num(u64),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Search {
    /// Alternatives (joined by OR), each a list of terms that must all hold.
    groups: Vec<Vec<Term>>,
    pub warnings: Vec<String>,
}

fn tokens(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in q.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_time(v: &str) -> Option<i64> {
    if let Ok(t) = v.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    let d: jiff::civil::Date = v.parse().ok()?;
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp().as_millisecond())
}

impl Search {
    pub fn parse(q: Option<&str>) -> Search {
        let mut s = Search {
            groups: vec![Vec::new()],
            ..Search::default()
        };
        for tok in tokens(q.unwrap_or_default()) {
            if tok == "AND" {
                continue;
            }
            if tok == "OR" {
                if s.groups.last().is_some_and(|g| !g.is_empty()) {
                    s.groups.push(Vec::new());
                }
                continue;
            }
            if tok == "NOT" || tok.starts_with('(') || tok.starts_with('-') {
                s.warnings.push(format!(
                    "'{tok}' is not supported by this platform and was ignored"
                ));
                continue;
            }
            let Some((field, rest)) = tok.split_once(':') else {
                s.term(Term {
                    field: None,
                    cmp: Cmp::Eq,
                    value: tok,
                });
                continue;
            };
            let (cmp, value) = if let Some(v) = rest.strip_prefix(">=") {
                (Cmp::Ge, v)
            } else if let Some(v) = rest.strip_prefix("<=") {
                (Cmp::Le, v)
            } else if let Some(v) = rest.strip_prefix('>') {
                (Cmp::Gt, v)
            } else if let Some(v) = rest.strip_prefix('<') {
                (Cmp::Lt, v)
            } else {
                (Cmp::Eq, rest)
            };
            s.term(Term {
                field: Some(field.to_lowercase()),
                cmp,
                value: value.trim_matches(|c| c == '\'' || c == '"').to_owned(),
            });
        }
        s
    }

    fn term(&mut self, t: Term) {
        if let Some(g) = self.groups.last_mut() {
            g.push(t);
        }
    }

    /// The terms, when there are no alternatives.
    fn only(&self) -> Option<&[Term]> {
        match self.groups.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }

    /// The lower bound of `updated_at` the query asks for (to start an index walk there).
    pub fn updated_after(&self) -> Option<i64> {
        self.only()?
            .iter()
            .filter(|t| t.field.as_deref() == Some("updated_at"))
            .filter_map(|t| match t.cmp {
                Cmp::Gt => parse_time(&t.value).map(|v| v + 1),
                Cmp::Ge | Cmp::Eq => parse_time(&t.value),
                _ => None,
            })
            .max()
    }

    /// The lowest product id an `id:>` / `id:>=` term allows (where a walk in id order starts).
    pub fn id_from(&self) -> Option<u64> {
        self.only()?
            .iter()
            .filter(|t| t.field.as_deref() == Some("id"))
            .filter_map(|t| {
                let n = t.value.rsplit('/').next()?.parse::<u64>().ok()?;
                match t.cmp {
                    Cmp::Gt => Some(n.saturating_add(1)),
                    Cmp::Ge | Cmp::Eq => Some(n),
                    _ => None,
                }
            })
            .max()
    }

    /// The values of a plain `field:value` term (no wildcard), lower-cased, when every
    /// alternative has one: the records to look at are those with one of these values.
    pub fn exact(&self, field: &str) -> Option<Vec<String>> {
        self.groups
            .iter()
            .map(|g| {
                g.iter()
                    .find(|t| {
                        t.field.as_deref() == Some(field)
                            && t.cmp == Cmp::Eq
                            && !t.value.ends_with('*')
                    })
                    .map(|t| t.value.to_lowercase())
            })
            .collect()
    }

    /// Drops terms on fields `known` rejects, with a warning each (done once per query).
    pub fn check_fields(&mut self, known: &[&str]) {
        let mut warnings = Vec::new();
        for g in &mut self.groups {
            g.retain(|t| match &t.field {
                Some(f) if !known.contains(&f.as_str()) => {
                    warnings.push(format!("Invalid search field for this query: '{f}'"));
                    false
                }
                _ => true,
            });
        }
        self.warnings.extend(warnings);
    }

    /// Whether a record matches: `get(field)` gives its values of a field (`None` for the
    /// default text field, searched by `title`).
    pub fn matches<'a>(&self, get: impl Fn(&str) -> Vec<Field<'a>>) -> bool {
        self.groups.iter().any(|g| {
            g.iter().all(|t| {
                let name = t.field.as_deref().unwrap_or("title");
                get(name).iter().any(|v| t.test(v))
            })
        })
    }
}

impl Term {
    fn test(&self, v: &Field<'_>) -> bool {
        match v {
            Field::Str(s) => {
                let (s, want) = (s.to_lowercase(), self.value.to_lowercase());
                match (self.field.is_none(), want.strip_suffix('*')) {
                    (_, Some(prefix)) => s.starts_with(prefix),
                    (true, None) => s.contains(&want),
                    (false, None) => s == want,
                }
            }
            Field::Time(ms) => parse_time(&self.value).is_some_and(|want| self.order(*ms, want)),
            Field::Num(n) => {
                let raw = self.value.rsplit('/').next().unwrap_or_default();
                raw.parse::<u64>().is_ok_and(|want| self.order(*n, want))
            }
        }
    }

    fn order<T: PartialOrd>(&self, have: T, want: T) -> bool {
        match self.cmp {
            Cmp::Eq => have == want,
            Cmp::Gt => have > want,
            Cmp::Ge => have >= want,
            Cmp::Lt => have < want,
            Cmp::Le => have <= want,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_range_starts_at_its_lower_bound() {
        let s = Search::parse(Some("id:>41 id:<=80"));
        assert_eq!(s.id_from(), Some(42));
        assert!(s.matches(|_| vec![Field::Num(42)]));
        assert!(!s.matches(|_| vec![Field::Num(41)]));
        assert!(!s.matches(|_| vec![Field::Num(81)]));
        assert_eq!(
            Search::parse(Some("id:>=gid://shopify/Product/7")).id_from(),
            Some(7)
        );
        // Alternatives have no single lower bound.
        assert_eq!(Search::parse(Some("id:>5 OR id:<2")).id_from(), None);
    }

    #[test]
    fn terms_and_comparisons() {
        let s = Search::parse(Some("updated_at:>'2026-01-01T00:00:00Z' sku:ABC-1"));
        let t = parse_time("2026-01-01T00:00:00Z").unwrap_or_default();
        let rec = |at: i64, sku: &'static str| {
            move |f: &str| match f {
                "updated_at" => vec![Field::Time(at)],
                "sku" => vec![Field::Str(sku)],
                _ => vec![],
            }
        };
        assert!(
            s.matches(rec(t + 1, "abc-1")),
            "case-insensitive, strictly after"
        );
        assert!(!s.matches(rec(t, "ABC-1")), "equal is not after");
        assert!(!s.matches(rec(t + 1, "ABC-10")));
        assert_eq!(s.updated_after(), Some(t + 1));
        let p = Search::parse(Some("sku:ABC*"));
        assert!(p.matches(rec(0, "ABC-10")));
        let d = Search::parse(Some("updated_at:>=2026-01-01"));
        assert!(d.matches(rec(t, "")));
    }

    #[test]
    fn alternatives_join_with_or() {
        let s = Search::parse(Some("sku:\"A-1\" OR sku:b-2 OR sku:c status:active"));
        let rec = |sku: &'static str, status: &'static str| {
            move |f: &str| match f {
                "sku" => vec![Field::Str(sku)],
                "status" => vec![Field::Str(status)],
                _ => vec![],
            }
        };
        assert!(s.matches(rec("a-1", "draft")));
        assert!(s.matches(rec("B-2", "draft")));
        assert!(!s.matches(rec("c", "draft")), "AND binds tighter than OR");
        assert!(s.matches(rec("c", "active")));
        assert!(!s.matches(rec("d", "active")));
        assert_eq!(
            s.exact("sku"),
            Some(vec!["a-1".to_owned(), "b-2".to_owned(), "c".to_owned()])
        );
        assert_eq!(s.updated_after(), None, "no single bound over alternatives");
        assert_eq!(Search::parse(Some("sku:a OR title:x")).exact("sku"), None);
    }

    #[test]
    fn unknown_fields_warn_and_match_all() {
        let mut s = Search::parse(Some("colour:red"));
        s.check_fields(&["sku"]);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.matches(|_| vec![]));
    }
}
