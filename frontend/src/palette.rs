//! Colours that identify a brand everywhere (map points, chart lines, legend swatches).
//! A brand's colour comes from a hash of its name, so it is the same on every screen,
//! after every reload and for brands nobody listed in advance.

/// FNV-1a: tiny, stable across platforms and releases (unlike `DefaultHasher`).
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Hue in degrees, spread with the golden angle so similar names still differ.
pub fn brand_hue(brand: &str) -> u32 {
    ((u64::from(fnv1a(brand)) * 137) % 360) as u32
}

/// A CSS colour bright enough to read on the dark map and the light tables.
pub fn brand_color(brand: &str) -> String {
    format!("hsl({} 78% {}%)", brand_hue(brand), brand_lightness(brand))
}

/// Lightness in percent, 52–63, varied by the hash so equal hues still differ.
pub fn brand_lightness(brand: &str) -> u32 {
    52 + (fnv1a(brand) >> 9) % 12
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_brand_keeps_its_colour_and_brands_mostly_differ() {
        assert_eq!(brand_color("Nike"), brand_color("Nike"));
        let names = [
            "Nike",
            "Adidas",
            "Apple, Inc.",
            "Lego",
            "Coca-Cola",
            "L'Oréal",
            "Ben & Jerry's",
            "Samsung",
        ];
        let hues: std::collections::HashSet<_> = names.iter().map(|n| brand_hue(n)).collect();
        assert!(hues.len() >= names.len() - 1, "{hues:?}");
        assert!(brand_color("Nike").starts_with("hsl("));
    }
}
