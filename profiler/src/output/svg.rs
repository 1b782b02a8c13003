//! Flame graphs, rendered by inferno from folded stacks.

use std::{collections::BTreeMap, io::Write};

use inferno::flamegraph::{self, Options, Palette};

use crate::cli::MinWidth;

/// The width inferno lays frames out in: its default 1200-pixel image less
/// 10 pixels of padding on each side, as flamegraph.pl's --minwidth counts.
const FRAMES_WIDTH_PX: f64 = 1180.0;

pub struct GraphStyle<'a> {
    pub title: String,
    pub subtitle: Option<String>,
    pub count_name: &'a str,
    pub palette: Palette,
}

/// Writes the flame graph of `folded`, leaving out functions narrower than
/// `min_width_percent` of all samples (see [`percent_of_total`]).
pub fn write(
    out: &mut dyn Write,
    folded: &BTreeMap<String, u64>,
    style: GraphStyle,
    min_width_percent: f64,
) -> std::io::Result<()> {
    if folded.is_empty() {
        // inferno refuses empty input; an empty graph that says so is clearer.
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"60\"><text x=\"600\" y=\"35\" \
             text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{}: no samples were collected</text></svg>\n",
            escape(&style.title)
        );
        return out.write_all(svg.as_bytes());
    }
    let mut options = Options::default();
    options.title = style.title;
    options.subtitle = style.subtitle;
    options.count_name = style.count_name.to_string();
    options.colors = style.palette;
    options.deterministic = true;
    options.min_width = min_width_percent;
    let lines = super::folded::lines(folded);
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
}

/// --min-width as inferno takes it: its `min_width` is a percentage of
/// all samples, where flamegraph.pl's --minwidth (which users know) is
/// pixels.
pub(crate) fn percent_of_total(min_width: MinWidth) -> f64 {
    match min_width {
        MinWidth::Pixels(px) => px * 100.0 / FRAMES_WIDTH_PX,
        MinWidth::Percent(percent) => percent,
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style() -> GraphStyle<'static> {
        GraphStyle {
            title: "On-CPU <test>".into(),
            subtitle: None,
            count_name: "samples",
            palette: Palette::default(),
        }
    }

    #[test]
    fn renders_function_names_into_the_graph() {
        let folded = BTreeMap::from([("app;main;hot_loop".to_string(), 7u64)]);
        let mut out = Vec::new();
        write(&mut out, &folded, style(), 0.1).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(
            svg.contains("hot_loop"),
            "function name missing from the SVG"
        );
        assert!(svg.contains("7 samples"), "count missing from the SVG");

        let mut out = Vec::new();
        write(&mut out, &BTreeMap::new(), style(), 0.1).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(
            svg.contains("On-CPU &lt;test&gt;: no samples were collected"),
            "{svg}"
        );
    }

    /// Function names drawn in the graph of `folded` at `min_width`.
    fn drawn(folded: &[(&str, u64)], min_width: MinWidth) -> Vec<String> {
        let folded = folded.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        let mut out = Vec::new();
        write(&mut out, &folded, style(), percent_of_total(min_width)).unwrap();
        let svg = String::from_utf8(out).unwrap();
        ["wide", "above", "below"]
            .into_iter()
            .filter(|name| svg.contains(&format!("<title>{name} (")))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn min_width_is_pixels_of_the_graph_or_a_percentage() {
        // 11800 samples over 1180 pixels: 10 samples a pixel, 118 a percent.
        let folded = [("app;wide", 11700), ("app;above", 51), ("app;below", 49)];
        assert_eq!(drawn(&folded, MinWidth::Pixels(5.0)), ["wide", "above"]);
        assert_eq!(
            drawn(&folded, MinWidth::Pixels(4.8)),
            ["wide", "above", "below"]
        );
        assert_eq!(drawn(&folded, MinWidth::Percent(0.42)), ["wide", "above"]);
        assert_eq!(drawn(&folded, MinWidth::Percent(0.44)), ["wide"]);
    }
}
