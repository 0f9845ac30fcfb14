//! The world map's geometry: decoding Natural Earth TopoJSON into longitude/latitude
//! rings, and the equirectangular projection that places both the land and every upload
//! on the canvas. Pure, so it is tested on the host and drawn unchanged in the browser.
//!
//! TopoJSON stores shared borders once as "arcs": quantized integer positions,
//! delta-encoded, turned back into degrees by the topology's `transform`. A polygon ring
//! is a list of arc indices; a negative index `!i` (bitwise not) means arc `i` reversed.
//! Consecutive arcs share their joining point, which is kept once.

use serde::Deserialize;
use serde_json::Value;

/// A closed ring of `[longitude, latitude]` positions in degrees.
pub type Ring = Vec<[f64; 2]>;

#[derive(Debug, Clone, PartialEq)]
pub enum TopoError {
    Json(String),
    MissingObject(String),
    BadArcIndex(i64),
    BadGeometry(String),
}

impl std::fmt::Display for TopoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopoError::Json(e) => write!(f, "map data is not TopoJSON: {e}"),
            TopoError::MissingObject(o) => write!(f, "map data has no object {o:?}"),
            TopoError::BadArcIndex(i) => write!(f, "map data names a missing arc {i}"),
            TopoError::BadGeometry(g) => write!(f, "map data has a malformed geometry: {g}"),
        }
    }
}

impl std::error::Error for TopoError {}

#[derive(Deserialize)]
struct Topology {
    objects: serde_json::Map<String, Value>,
    arcs: Vec<Vec<[f64; 2]>>,
    transform: Option<Transform>,
}

#[derive(Deserialize, Clone, Copy)]
struct Transform {
    scale: [f64; 2],
    translate: [f64; 2],
}

/// Decodes every polygon ring of the named object (`land`, `countries`, …) into degrees.
pub fn decode_rings(json: &str, object: &str) -> Result<Vec<Ring>, TopoError> {
    let topo: Topology = serde_json::from_str(json).map_err(|e| TopoError::Json(e.to_string()))?;
    let arcs = decode_arcs(&topo.arcs, topo.transform);
    let geometry = topo
        .objects
        .get(object)
        .ok_or_else(|| TopoError::MissingObject(object.to_string()))?;
    let mut rings = Vec::new();
    collect_rings(geometry, &arcs, &mut rings)?;
    Ok(rings)
}

/// Turns quantized, delta-encoded arcs into absolute positions in degrees.
fn decode_arcs(raw: &[Vec<[f64; 2]>], transform: Option<Transform>) -> Vec<Ring> {
    raw.iter()
        .map(|arc| match transform {
            Some(t) => {
                let (mut x, mut y) = (0.0, 0.0);
                arc.iter()
                    .map(|[dx, dy]| {
                        x += dx;
                        y += dy;
                        [
                            x * t.scale[0] + t.translate[0],
                            y * t.scale[1] + t.translate[1],
                        ]
                    })
                    .collect()
            }
            None => arc.clone(),
        })
        .collect()
}

fn collect_rings(geometry: &Value, arcs: &[Ring], out: &mut Vec<Ring>) -> Result<(), TopoError> {
    let kind = geometry.get("type").and_then(Value::as_str).unwrap_or("");
    let bad = || TopoError::BadGeometry(kind.to_string());
    match kind {
        "GeometryCollection" => {
            let geometries = geometry
                .get("geometries")
                .and_then(Value::as_array)
                .ok_or_else(bad)?;
            for g in geometries {
                collect_rings(g, arcs, out)?;
            }
        }
        "Polygon" => {
            let polygon = geometry.get("arcs").ok_or_else(bad)?;
            push_polygon(polygon, arcs, out)?;
        }
        "MultiPolygon" => {
            let polygons = geometry
                .get("arcs")
                .and_then(Value::as_array)
                .ok_or_else(bad)?;
            for polygon in polygons {
                push_polygon(polygon, arcs, out)?;
            }
        }
        // Points and lines have no area to fill on a land map.
        _ => {}
    }
    Ok(())
}

fn push_polygon(polygon: &Value, arcs: &[Ring], out: &mut Vec<Ring>) -> Result<(), TopoError> {
    let rings = polygon
        .as_array()
        .ok_or_else(|| TopoError::BadGeometry("polygon".into()))?;
    for ring in rings {
        let indices: Vec<i64> = ring
            .as_array()
            .ok_or_else(|| TopoError::BadGeometry("ring".into()))?
            .iter()
            .map(|v| {
                v.as_i64()
                    .ok_or_else(|| TopoError::BadGeometry("arc index".into()))
            })
            .collect::<Result<_, _>>()?;
        out.push(stitch(&indices, arcs)?);
    }
    Ok(())
}

/// Joins a ring's arcs, reversing those named by `!i`, dropping each shared join point.
fn stitch(indices: &[i64], arcs: &[Ring]) -> Result<Ring, TopoError> {
    let mut ring: Ring = Vec::new();
    for &i in indices {
        let (index, reversed) = if i < 0 { (!i, true) } else { (i, false) };
        let arc = usize::try_from(index)
            .ok()
            .and_then(|k| arcs.get(k))
            .ok_or(TopoError::BadArcIndex(i))?;
        let skip = usize::from(!ring.is_empty());
        if reversed {
            ring.extend(arc.iter().rev().skip(skip));
        } else {
            ring.extend(arc.iter().skip(skip));
        }
    }
    Ok(ring)
}

/// Makes each ring drawable on a flat map. Natural Earth cuts land at the
/// antimeridian, but a ring such as Eurasia's (Chukotka) or Fiji's still jumps from
/// 180° to −180° between neighbouring points; drawn as is, that edge becomes a stripe
/// across the whole map. Each ring is unwrapped so longitudes run continuously past
/// ±180°, and a ring that then spills over an edge is repeated 360° the other way, so
/// that with the map clipped to [−180°, 180°] both halves are filled.
pub fn rings_for_flat_map(rings: &[Ring]) -> Vec<Ring> {
    let mut out = Vec::with_capacity(rings.len() + 8);
    for ring in rings {
        let mut unwrapped: Ring = Vec::with_capacity(ring.len());
        let mut shift = 0.0;
        let mut prev: Option<f64> = None;
        for &[lon, lat] in ring {
            if let Some(p) = prev {
                let d = lon - p;
                if d > 180.0 {
                    shift -= 360.0;
                } else if d < -180.0 {
                    shift += 360.0;
                }
            }
            prev = Some(lon);
            unwrapped.push([lon + shift, lat]);
        }
        let min = unwrapped.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
        let max = unwrapped
            .iter()
            .map(|p| p[0])
            .fold(f64::NEG_INFINITY, f64::max);
        if max > 180.0 + 1e-9 {
            out.push(
                unwrapped
                    .iter()
                    .map(|&[lon, lat]| [lon - 360.0, lat])
                    .collect(),
            );
        }
        if min < -180.0 - 1e-9 {
            out.push(
                unwrapped
                    .iter()
                    .map(|&[lon, lat]| [lon + 360.0, lat])
                    .collect(),
            );
        }
        out.push(unwrapped);
    }
    out
}

/// Northernmost and southernmost latitudes shown. Antarctica's interior and the high
/// Arctic hold no cities, and cropping them leaves more of the screen for the world's
/// uploads.
pub const NORTH: f64 = 84.0;
pub const SOUTH: f64 = -58.0;

/// Equirectangular (plate carrée) projection fitted inside a `width`×`height` canvas
/// with its aspect ratio kept and the map centred. Cheap enough to run for every one of
/// 20,000 points in every frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub scale: f64,
    pub left: f64,
    pub top: f64,
}

impl Projection {
    pub fn fit(width: f64, height: f64) -> Projection {
        let span_lon = 360.0;
        let span_lat = NORTH - SOUTH;
        let scale = (width / span_lon).min(height / span_lat).max(0.0);
        Projection {
            scale,
            left: (width - span_lon * scale) / 2.0,
            top: (height - span_lat * scale) / 2.0,
        }
    }

    /// Canvas position of a longitude/latitude in degrees (y grows downwards).
    pub fn project(&self, lon: f64, lat: f64) -> (f64, f64) {
        (
            self.left + (lon + 180.0) * self.scale,
            self.top + (NORTH - lat) * self.scale,
        )
    }

    /// The inverse of [`Projection::project`].
    pub fn invert(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.left) / self.scale - 180.0,
            NORTH - (y - self.top) / self.scale,
        )
    }

    /// Width and height of the whole projected map.
    pub fn size(&self) -> (f64, f64) {
        (360.0 * self.scale, (NORTH - SOUTH) * self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two squares sharing an edge, quantized with a transform, the second using the
    /// shared arc reversed: the shape of every shared border in Natural Earth.
    const TWO_SQUARES: &str = r#"{
      "type": "Topology",
      "transform": {"scale": [0.5, 0.25], "translate": [-10, 20]},
      "objects": {
        "land": {"type": "GeometryCollection", "geometries": [
          {"type": "Polygon", "arcs": [[0, 1]]},
          {"type": "MultiPolygon", "arcs": [[[-1, 2]]]},
          {"type": "Point", "coordinates": [0, 0]}
        ]}
      },
      "arcs": [
        [[2, 0], [0, 4]],
        [[2, 4], [-2, 0], [0, -4], [2, 0]],
        [[2, 0], [2, 0], [0, 4], [-2, 0]]
      ]
    }"#;

    #[test]
    fn quantized_delta_arcs_decode_to_degrees() {
        let rings = decode_rings(TWO_SQUARES, "land").unwrap();
        assert_eq!(rings.len(), 2);
        // Arc 0 runs (2,0)→(2,4) in quanta: x = 2*0.5-10 = -9, y = 0*0.25+20 = 20 → 21.
        assert_eq!(
            rings[0],
            vec![
                [-9.0, 20.0],
                [-9.0, 21.0],
                [-10.0, 21.0],
                [-10.0, 20.0],
                [-9.0, 20.0]
            ]
        );
    }

    #[test]
    fn a_negative_index_walks_the_shared_arc_backwards_without_repeating_joins() {
        let rings = decode_rings(TWO_SQUARES, "land").unwrap();
        // !0 = -1: arc 0 reversed, (−9,21)→(−9,20), then arc 2 which starts at (−9,20).
        assert_eq!(
            rings[1],
            vec![
                [-9.0, 21.0],
                [-9.0, 20.0],
                [-8.0, 20.0],
                [-8.0, 21.0],
                [-9.0, 21.0]
            ]
        );
        assert_eq!(rings[1].first(), rings[1].last(), "the ring closes");
    }

    #[test]
    fn missing_objects_and_arcs_are_errors_not_panics() {
        assert_eq!(
            decode_rings(TWO_SQUARES, "countries"),
            Err(TopoError::MissingObject("countries".into()))
        );
        let broken = TWO_SQUARES.replace("[[0, 1]]", "[[0, 7]]");
        assert_eq!(
            decode_rings(&broken, "land"),
            Err(TopoError::BadArcIndex(7))
        );
        assert!(matches!(decode_rings("{", "land"), Err(TopoError::Json(_))));
    }

    #[test]
    fn the_bundled_natural_earth_land_decodes_into_the_world() {
        let json = include_str!("../../public/land-110m.json");
        let rings = decode_rings(json, "land").unwrap();
        assert!(rings.len() > 100, "{} rings", rings.len());
        let points: usize = rings.iter().map(Vec::len).sum();
        assert!(points > 3_000, "{points} points");
        for ring in &rings {
            assert!(ring.len() >= 4);
            for [lon, lat] in ring {
                assert!((-180.0..=180.0).contains(lon) && (-90.0..=90.0).contains(lat));
            }
        }
    }

    #[test]
    fn rings_crossing_the_antimeridian_are_unwrapped_and_repeated() {
        // An island straddling 180°: 179 → −179 → −179 → 179.
        let island: Ring = vec![
            [179.0, -16.0],
            [-179.0, -16.0],
            [-179.0, -17.0],
            [179.0, -17.0],
            [179.0, -16.0],
        ];
        let plain: Ring = vec![[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 10.0]];
        let out = rings_for_flat_map(&[island, plain.clone()]);
        assert_eq!(out.len(), 3);
        for ring in &out {
            for w in ring.windows(2) {
                assert!(
                    (w[0][0] - w[1][0]).abs() <= 180.0,
                    "no edge spans the map: {ring:?}"
                );
            }
        }
        assert_eq!(
            out[0],
            vec![
                [-181.0, -16.0],
                [-179.0, -16.0],
                [-179.0, -17.0],
                [-181.0, -17.0],
                [-181.0, -16.0]
            ]
        );
        assert_eq!(
            out[1],
            vec![
                [179.0, -16.0],
                [181.0, -16.0],
                [181.0, -17.0],
                [179.0, -17.0],
                [179.0, -16.0]
            ]
        );
        assert_eq!(out[2], plain);
    }

    #[test]
    fn the_bundled_land_has_no_edge_across_the_map_once_unwrapped() {
        let json = include_str!("../../public/land-110m.json");
        let rings = rings_for_flat_map(&decode_rings(json, "land").unwrap());
        for ring in &rings {
            for w in ring.windows(2) {
                assert!((w[0][0] - w[1][0]).abs() <= 180.0);
            }
        }
    }

    #[test]
    fn projection_keeps_aspect_centres_and_inverts() {
        let p = Projection::fit(1_000.0, 1_000.0);
        let (w, h) = p.size();
        assert!((w - 1_000.0).abs() < 1e-9);
        assert!(h < 1_000.0 && (p.top - (1_000.0 - h) / 2.0).abs() < 1e-9);
        let (x, y) = p.project(0.0, 0.0);
        assert!((x - 500.0).abs() < 1e-9);
        assert!(y > p.top && y < p.top + h);
        let (lon, lat) = p.invert(x, y);
        assert!(lon.abs() < 1e-9 && lat.abs() < 1e-9);
        // West is left, north is up.
        let (x_w, y_n) = p.project(-100.0, 60.0);
        assert!(x_w < x && y_n < y);
        // A wide wall screen centres the map horizontally instead.
        let wide = Projection::fit(4_000.0, 1_000.0);
        assert!(wide.left > 0.0 && wide.top.abs() < 1e-9);
        assert_eq!(wide.project(180.0, SOUTH).1, 1_000.0);
    }
}
