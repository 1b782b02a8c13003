//! Flame graphs, rendered by inferno from folded stacks.

use std::{collections::BTreeMap, io::BufWriter, path::Path};

use anyhow::{Context, Result};
use inferno::flamegraph::{self, Options, Palette};

pub struct GraphStyle<'a> {
    pub title: String,
    pub subtitle: Option<String>,
    pub count_name: &'a str,
    pub palette: Palette,
}

pub fn write(
    path: &Path,
    folded: &BTreeMap<String, u64>,
    style: GraphStyle,
    min_width: f64,
) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("writing {}", path.display()))?;
    if folded.is_empty() {
        // inferno refuses empty input; an empty graph that says so is clearer.
        let svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"1200\" height=\"60\"><text x=\"600\" y=\"35\" \
             text-anchor=\"middle\" font-family=\"Verdana\" font-size=\"17\">{}: no samples were collected</text></svg>\n",
            escape(&style.title)
        );
        return std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()));
    }
    let mut options = Options::default();
    options.title = style.title;
    options.subtitle = style.subtitle;
    options.count_name = style.count_name.to_string();
    options.colors = style.palette;
    options.deterministic = true;
    options.min_width = min_width;
    let lines = super::folded::lines(folded);
    flamegraph::from_lines(
        &mut options,
        lines.iter().map(String::as_str),
        BufWriter::new(file),
    )
    .with_context(|| format!("rendering {}", path.display()))
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
        let dir = std::env::temp_dir().join(format!("bpfprof-svg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("g.svg");
        let folded = BTreeMap::from([("app;main;hot_loop".to_string(), 7u64)]);
        write(&path, &folded, style(), 0.1).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.contains("hot_loop"),
            "function name missing from the SVG"
        );
        assert!(svg.contains("7 samples"), "count missing from the SVG");

        write(&path, &BTreeMap::new(), style(), 0.1).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(
            svg.contains("On-CPU &lt;test&gt;: no samples were collected"),
            "{svg}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
