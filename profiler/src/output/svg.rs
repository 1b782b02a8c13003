//! Flame graphs, rendered by inferno from folded stacks.

use std::{collections::BTreeMap, io::Write};

use inferno::flamegraph::{self, Options, Palette};

pub struct GraphStyle<'a> {
    pub title: String,
    pub subtitle: Option<String>,
    pub count_name: &'a str,
    pub palette: Palette,
}

pub fn write(
    out: &mut dyn Write,
    folded: &BTreeMap<String, u64>,
    style: GraphStyle,
    min_width: f64,
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
    options.min_width = min_width;
    let lines = super::folded::lines(folded);
    flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
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
}
