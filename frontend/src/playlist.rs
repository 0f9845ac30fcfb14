//! The wall playlist's URL syntax, parsed without a browser so it is tested on the
//! host:
//!
//! `/present?views=overview,map:Nike,brand:Adidas,compare:Nike+Adidas,alerts&every=20`
//!
//! - views are separated by `,`, a view's kind from its argument by `:`, and the
//!   brands of a comparison by `+`;
//! - kinds: `overview` (the leaderboard), `map` or `map:BRAND` (the live map, all
//!   brands or one), `brand:BRAND`, `compare:A+B[+C…]` (2 to 5 brands), `alerts`
//!   (alerts and influencers);
//! - a brand name is percent-encoded as `encodeURIComponent` does, so its own `,`, `+`,
//!   `:` or `&` never splits anything (`brand:Apple%2C%20Inc.`);
//! - `every` is the seconds per view (3 to 3,600, default 15);
//! - no `views`: overview, map, alerts, the rotation presentation mode always had.
//!
//! A view the syntax does not know is left out and reported, so one typo on a wall
//! screen costs one view, not the whole playlist.

use crate::route::{decode_component, encode_component};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Overview,
    Map(Option<String>),
    Brand(String),
    Compare(Vec<String>),
    Alerts,
}

/// Most brands one comparison holds (the compare page's limit).
pub const MAX_COMPARED: usize = 5;

impl View {
    /// The view as the URL names it: `map:Nike`, `compare:Nike+Adidas`.
    pub fn name(&self) -> String {
        match self {
            View::Overview => "overview".into(),
            View::Map(None) => "map".into(),
            View::Map(Some(b)) => format!("map:{}", encode_component(b)),
            View::Brand(b) => format!("brand:{}", encode_component(b)),
            View::Compare(bs) => format!(
                "compare:{}",
                bs.iter()
                    .map(|b| encode_component(b))
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            View::Alerts => "alerts".into(),
        }
    }

    /// A title for the presentation bar.
    pub fn title(&self) -> String {
        match self {
            View::Overview => "Leaderboard".into(),
            View::Map(None) => "Live map".into(),
            View::Map(Some(b)) => format!("Live map · {b}"),
            View::Brand(b) => b.clone(),
            View::Compare(bs) => bs.join(" vs "),
            View::Alerts => "Alerts & influencers".into(),
        }
    }
}

pub fn default_views() -> Vec<View> {
    vec![View::Overview, View::Map(None), View::Alerts]
}

/// The views of a raw (still percent-encoded) `views` value, and what was left out.
pub fn parse(raw: &str) -> (Vec<View>, Vec<String>) {
    let mut views = Vec::new();
    let mut refused = Vec::new();
    for item in raw.split(',').filter(|s| !s.is_empty()) {
        let (kind, arg) = match item.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (item, None),
        };
        let brand = |a: &str| decode_component(a).trim().to_string();
        let view = match (kind, arg) {
            ("overview" | "leaderboard", None) => Some(View::Overview),
            ("map", None) => Some(View::Map(None)),
            ("map", Some(a)) if !brand(a).is_empty() => Some(View::Map(Some(brand(a)))),
            ("brand", Some(a)) if !brand(a).is_empty() => Some(View::Brand(brand(a))),
            ("compare", Some(a)) => {
                let mut brands: Vec<String> = Vec::new();
                for b in a.split('+').map(brand).filter(|b| !b.is_empty()) {
                    if !brands.contains(&b) {
                        brands.push(b);
                    }
                }
                (2..=MAX_COMPARED)
                    .contains(&brands.len())
                    .then_some(View::Compare(brands))
            }
            ("alerts", None) => Some(View::Alerts),
            _ => None,
        };
        match view {
            Some(v) => views.push(v),
            None => refused.push(decode_component(item)),
        }
    }
    (views, refused)
}

/// Seconds per view from `every`: 3 to 3,600, default 15.
pub fn every_secs(every: Option<&str>) -> u32 {
    every
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(15)
        .clamp(3, 3_600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_example_names_four_views_in_order() {
        let (views, refused) = parse("overview,map:nike,brand:adidas,compare:nike+adidas");
        assert!(refused.is_empty());
        assert_eq!(
            views,
            [
                View::Overview,
                View::Map(Some("nike".into())),
                View::Brand("adidas".into()),
                View::Compare(vec!["nike".into(), "adidas".into()]),
            ]
        );
    }

    #[test]
    fn brand_names_with_separators_round_trip_through_their_names() {
        let views = [
            View::Brand("Apple, Inc.".into()),
            View::Map(Some("A+B: C".into())),
            View::Compare(vec!["Ben & Jerry's".into(), "Apple, Inc.".into()]),
            View::Alerts,
        ];
        let raw = views.iter().map(View::name).collect::<Vec<_>>().join(",");
        assert_eq!(parse(&raw), (views.to_vec(), vec![]));
        assert_eq!(views[0].name(), "brand:Apple%2C%20Inc.");
    }

    #[test]
    fn a_typo_costs_one_view_not_the_playlist() {
        let (views, refused) = parse("overveiw,map,compare:nike,brand:,alerts");
        assert_eq!(views, [View::Map(None), View::Alerts]);
        assert_eq!(refused, ["overveiw", "compare:nike", "brand:"]);
        let six = "compare:a+b+c+d+e+f";
        assert_eq!(parse(six).1, [six], "at most five brands");
        assert_eq!(
            parse("compare:a+a+b").0,
            [View::Compare(vec!["a".into(), "b".into()])]
        );
    }

    #[test]
    fn the_pace_is_bounded() {
        assert_eq!(every_secs(None), 15);
        assert_eq!(every_secs(Some("20")), 20);
        assert_eq!(every_secs(Some("1")), 3);
        assert_eq!(every_secs(Some("x")), 15);
    }
}
