//! The bundled reference data: brands with their popularity weights, and world cities
//! with their populations. Both are compiled into the binary so the generator needs no
//! files at run time, and parsed once on first use.

use std::sync::OnceLock;

/// A brand as it appears in a photo's `tags`, with how often the generator picks it.
#[derive(Debug, Clone, PartialEq)]
pub struct Brand {
    /// Exactly the tag on the wire; may contain commas ("Apple, Inc.").
    pub name: String,
    pub category: String,
    /// Relative popularity; a brand's share of photos is its weight over the sum.
    pub weight: f64,
}

/// A city users live in and photos are taken at.
#[derive(Debug, Clone, PartialEq)]
pub struct City {
    pub name: String,
    /// ISO 3166-1 alpha-2 code.
    pub country: String,
    pub latitude: f64,
    pub longitude: f64,
    pub population: u64,
}

const BRANDS_CSV: &str = include_str!("../data/brands.csv");
const CITIES_CSV: &str = include_str!("../data/world_cities.csv");

/// The 60 bundled brands, in the file's order (most popular first).
pub fn brands() -> &'static [Brand] {
    static BRANDS: OnceLock<Vec<Brand>> = OnceLock::new();
    BRANDS.get_or_init(|| {
        records(BRANDS_CSV)
            .map(|r| Brand {
                name: r[0].to_owned(),
                category: r[1].to_owned(),
                weight: number(&r, 2),
            })
            .collect()
    })
}

/// The 1,422 bundled cities (population >= 300,000), most populous first.
/// Contains data from GeoNames, CC BY 4.0.
pub fn cities() -> &'static [City] {
    static CITIES: OnceLock<Vec<City>> = OnceLock::new();
    CITIES.get_or_init(|| {
        records(CITIES_CSV)
            .map(|r| City {
                name: r[0].to_owned(),
                country: r[1].to_owned(),
                latitude: number(&r, 2),
                longitude: number(&r, 3),
                population: number(&r, 4),
            })
            .collect()
    })
}

/// The brand with this name: exact first, then ignoring case and accents, so an
/// operator typing `nike` or `l'oreal` into a campaign form is understood.
pub fn find_brand(name: &str) -> Option<&'static Brand> {
    brand_index(name).map(|i| &brands()[i])
}

/// The city with this name, ignoring case and accents (`sao paulo` finds São Paulo).
/// `Name, CC` picks the country when a name is ambiguous; otherwise the most populous
/// city of that name wins, as a person saying "Portland" usually means the big one.
pub fn find_city(name: &str) -> Option<&'static City> {
    city_index(name).map(|i| &cities()[i])
}

pub(crate) fn brand_index(name: &str) -> Option<usize> {
    let name = name.trim();
    let all = brands();
    all.iter().position(|b| b.name == name).or_else(|| {
        let want = fold(name);
        all.iter().position(|b| fold(&b.name) == want)
    })
}

pub(crate) fn city_index(name: &str) -> Option<usize> {
    let all = cities();
    let want = fold(name.trim());
    // Whole-name match first: "Washington, D.C." has a comma of its own.
    if let Some(i) = all.iter().position(|c| fold(&c.name) == want) {
        return Some(i);
    }
    let (city, country) = want.rsplit_once(',')?;
    let (city, country) = (city.trim(), country.trim());
    all.iter()
        .position(|c| fold(&c.name) == city && c.country.eq_ignore_ascii_case(country))
}

/// Lowercases and strips the accents of the Latin letters our data and name lists use,
/// so usernames stay ASCII and look-ups forgive a missing accent.
pub(crate) fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let base = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => {
                'a'
            }
            'ç' | 'Ç' | 'ć' | 'č' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' | 'ę' | 'ě' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'ı' | 'İ' => 'i',
            'ñ' | 'Ñ' | 'ń' => 'n',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'ő' => {
                'o'
            }
            'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'ű' => 'u',
            'ý' | 'ÿ' | 'Ý' => 'y',
            'ś' | 'š' | 'ş' | 'Ş' | 'Š' => 's',
            'ž' | 'ź' | 'ż' | 'Ž' => 'z',
            'ł' | 'Ł' => 'l',
            'ğ' => 'g',
            '’' | '‘' => '\'',
            other => other,
        };
        out.extend(base.to_lowercase());
    }
    out
}

fn records(text: &'static str) -> impl Iterator<Item = csv::StringRecord> {
    csv::Reader::from_reader(text.as_bytes())
        .into_records()
        .map(|r| r.expect("bundled CSV is well-formed"))
}

fn number<T: std::str::FromStr>(r: &csv::StringRecord, i: usize) -> T {
    r[i].trim()
        .parse()
        .unwrap_or_else(|_| panic!("bundled CSV: {:?} is not a number", &r[i]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_names_keep_their_commas_and_apostrophes() {
        let names: Vec<&str> = brands().iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names.len(), 60);
        for want in [
            "Apple, Inc.",
            "Google, LLC",
            "L'Oréal",
            "Ben & Jerry's",
            "Dunkin'",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(brands().iter().all(|b| b.weight > 0.0));
    }

    #[test]
    fn cities_parse_with_sane_coordinates() {
        let all = cities();
        assert_eq!(all.len(), 1422);
        assert!(all.iter().any(|c| c.name == "Washington, D.C."));
        for c in all {
            assert!(
                c.latitude.abs() <= 90.0 && c.longitude.abs() <= 180.0,
                "{c:?}"
            );
            assert!(c.population >= 300_000, "{c:?}");
        }
    }

    #[test]
    fn lookups_forgive_case_and_accents() {
        let brand = |s| find_brand(s).map(|b| b.name.as_str());
        let city = |s| find_city(s).map(|c| (c.name.as_str(), c.country.as_str()));
        assert_eq!(brand("apple, inc."), Some("Apple, Inc."));
        assert_eq!(brand("l'oreal"), Some("L'Oréal"));
        assert_eq!(brand("Nkie"), None);
        assert_eq!(city("sao paulo"), Some(("São Paulo", "BR")));
        assert_eq!(city("washington, d.c."), Some(("Washington, D.C.", "US")));
        assert_eq!(city("PARIS"), Some(("Paris", "FR")));
        assert_eq!(city("london"), Some(("London", "GB")), "the bigger London");
        assert_eq!(city("London, ca"), Some(("London", "CA")));
        assert_eq!(city("Atlantis"), None);
    }
}
