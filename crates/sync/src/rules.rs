//! Per-child sync rules: which fields the child takes from the parent (the rest it owns and
//! ferry never touches), and how its prices are made from the parent's.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// A field of a product that a child may take from the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Title,
    Description,
    Tags,
    Vendor,
    ProductType,
    /// The list of variants (options, SKUs): added and removed with the parent's.
    Variants,
    Prices,
    Status,
    /// Collection membership (collections are matched by handle, made when missing).
    Collections,
    /// The product's images, in order, with their alt texts.
    Images,
}

impl Field {
    pub const ALL: [Field; 10] = [
        Field::Title,
        Field::Description,
        Field::Tags,
        Field::Vendor,
        Field::ProductType,
        Field::Variants,
        Field::Prices,
        Field::Status,
        Field::Collections,
        Field::Images,
    ];
}

/// How a child's price is made from the parent's: a markup, then a rounding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceRule {
    /// Percent added (may be negative: a discount), e.g. 10 for +10%.
    #[serde(default)]
    pub percent: f64,
    /// A fixed amount added after the percent, e.g. "2.00".
    #[serde(default)]
    pub fixed: Option<String>,
    /// The cents every price ends in, rounding up: ".99" makes 12.20 into 12.99.
    #[serde(default)]
    pub ending: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The fields the child takes from the parent (default: all of them). Each once: a list
    /// naming one twice is refused rather than read as a set.
    #[serde(default = "all_fields", deserialize_with = "unique_fields")]
    pub fields: BTreeSet<Field>,
    #[serde(default)]
    pub price: Option<PriceRule>,
}

fn unique_fields<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeSet<Field>, D::Error> {
    let listed = Vec::<Field>::deserialize(d)?;
    let set: BTreeSet<Field> = listed.iter().copied().collect();
    if set.len() != listed.len() {
        return Err(serde::de::Error::custom("fields names a field twice"));
    }
    Ok(set)
}

fn all_fields() -> BTreeSet<Field> {
    Field::ALL.into_iter().collect()
}

impl Rules {
    /// Every field but `own`, which the child keeps as it is; no price rule.
    pub fn all_but(own: Field) -> Rules {
        Rules {
            fields: Field::ALL.into_iter().filter(|f| *f != own).collect(),
            price: None,
        }
    }

    /// Every field, and prices `percent` up (negative: down) ending in `ending` (".99").
    pub fn marked_up(percent: f64, ending: &str) -> Rules {
        Rules {
            price: Some(PriceRule {
                percent,
                fixed: None,
                ending: Some(ending.to_owned()),
            }),
            ..Rules::default()
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            fields: all_fields(),
            price: None,
        }
    }
}

/// Cents of a decimal amount ("12.5" → 1250); `None` if it is not one.
pub fn cents(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 2
    {
        return None;
    }
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let f: i64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    let c = w.checked_mul(100)?.checked_add(f)?;
    Some(if neg { -c } else { c })
}

/// "12.50" from 1250.
pub fn format_cents(c: i64) -> String {
    let sign = if c < 0 { "-" } else { "" };
    let c = c.abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

impl PriceRule {
    /// Checks the rule once, when it is saved.
    pub fn validate(&self) -> Result<(), String> {
        if !self.percent.is_finite() || self.percent <= -100.0 || self.percent > 10_000.0 {
            return Err("price.percent must be above -100 and at most 10000".into());
        }
        if let Some(f) = &self.fixed {
            // Strictly `-?D{1,9}(.D{1,2})?`: what the API documents, nothing the parser would
            // also forgive (spaces, "5.", ".5").
            let (whole, frac) = f
                .strip_prefix('-')
                .unwrap_or(f)
                .split_once('.')
                .map_or((f.strip_prefix('-').unwrap_or(f), None), |(w, d)| {
                    (w, Some(d))
                });
            let digits = |s: &str, n: std::ops::RangeInclusive<usize>| {
                n.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
            };
            if !digits(whole, 1..=9) || frac.is_some_and(|d| !digits(d, 1..=2)) {
                return Err(format!(
                    "price.fixed {f:?} is not an amount like \"2.50\" or \"-1\""
                ));
            }
        }
        if let Some(e) = &self.ending {
            let ok =
                e.len() == 3 && e.starts_with('.') && e[1..].chars().all(|c| c.is_ascii_digit());
            if !ok {
                return Err(format!("price.ending {e:?} must look like \".99\""));
            }
        }
        Ok(())
    }

    /// The child's price for a parent price (unchanged if the parent's is not an amount).
    pub fn apply(&self, parent_price: &str) -> String {
        let Some(c) = cents(parent_price) else {
            return parent_price.to_owned();
        };
        let mut p = (c as f64 * (1.0 + self.percent / 100.0)).round() as i64;
        p += self.fixed.as_deref().and_then(cents).unwrap_or(0);
        if let Some(end) = self
            .ending
            .as_deref()
            .and_then(|e| e[1..].parse::<i64>().ok())
        {
            // The smallest price at or above p whose cents are `end`.
            let base = p.div_euclid(100) * 100 + end;
            p = if base >= p { base } else { base + 100 };
        }
        format_cents(p.max(0))
    }
}

impl Rules {
    pub fn takes(&self, f: Field) -> bool {
        self.fields.contains(&f)
    }

    pub fn validate(&self) -> Result<(), String> {
        match &self.price {
            Some(p) => p.validate(),
            None => Ok(()),
        }
    }

    /// The child's price for a parent price.
    pub fn price(&self, parent_price: &str) -> String {
        match &self.price {
            Some(r) => r.apply(parent_price),
            None => parent_price.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_named_twice_is_refused() {
        assert!(serde_json::from_str::<Rules>(r#"{"fields": ["tags", "tags"]}"#).is_err());
        let r: Rules = serde_json::from_str(r#"{"fields": ["tags", "title"]}"#).expect("rules");
        assert_eq!(r.fields.len(), 2);
    }

    #[test]
    fn cents_parse_and_print() {
        assert_eq!(cents("12.5"), Some(1250));
        assert_eq!(cents("12.05"), Some(1205));
        assert_eq!(cents("7"), Some(700));
        assert_eq!(cents("-1.10"), Some(-110));
        assert_eq!(cents("1.234"), None);
        assert_eq!(cents("abc"), None);
        assert_eq!(cents(""), None);
        assert_eq!(format_cents(1205), "12.05");
        assert_eq!(format_cents(-5), "-0.05");
    }

    #[test]
    fn markups_and_endings() {
        let r = PriceRule {
            percent: 10.0,
            fixed: None,
            ending: Some(".99".into()),
        };
        assert_eq!(r.apply("10.00"), "11.99");
        assert_eq!(r.apply("9.08"), "9.99", "9.988 rounds to 9.99, already .99");
        let fixed = PriceRule {
            percent: 0.0,
            fixed: Some("2.50".into()),
            ending: None,
        };
        assert_eq!(fixed.apply("10.00"), "12.50");
        let end00 = PriceRule {
            ending: Some(".00".into()),
            ..PriceRule::default()
        };
        assert_eq!(end00.apply("10.01"), "11.00");
        assert_eq!(end00.apply("10.00"), "10.00");
        let discount = PriceRule {
            percent: -50.0,
            ..PriceRule::default()
        };
        assert_eq!(discount.apply("3.33"), "1.67");
        assert_eq!(discount.apply("n/a"), "n/a");
    }

    #[test]
    fn rules_validate_and_default_to_every_field() {
        let r: Rules = serde_json::from_str("{}").unwrap_or_default();
        assert!(Field::ALL.iter().all(|f| r.takes(*f)));
        let r: Rules = serde_json::from_str(r#"{"fields": ["title"], "price": {"percent": 5}}"#)
            .unwrap_or_default();
        assert!(r.takes(Field::Title) && !r.takes(Field::Prices));
        assert!(r.validate().is_ok());
        let bad = PriceRule {
            ending: Some("99".into()),
            ..PriceRule::default()
        };
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<Rules>(r#"{"fields": ["colour"]}"#).is_err());
    }
}
