//! The windows over the tables: the process list `p` opens, and a
//! function's callers and callees (Enter), each edge with its share of
//! the function's total.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Modifier, Style},
    text::Line,
    widgets::{Block, Clear, Paragraph},
};

use super::{
    aggregate::Key,
    app::{App, Popup},
    draw::{cut, fit},
};
use crate::analysis::percent;

pub(super) fn draw(frame: &mut Frame, app: &App) {
    match &app.popup {
        Popup::None => {}
        Popup::Processes { choices, selected } => processes(frame, choices, *selected),
        Popup::Detail(key) => detail(frame, app, *key),
    }
}

/// A bordered window of `width` x `height` (at most the screen's) in the
/// middle of the screen, cleared; returns its inside.
fn window(frame: &mut Frame, width: u16, height: u16, title: &str) -> Rect {
    let area = frame
        .area()
        .centered(Constraint::Length(width), Constraint::Length(height));
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(cut(title, area.width.saturating_sub(2)));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    inner
}

fn processes(frame: &mut Frame, choices: &[(Option<u32>, String)], selected: usize) {
    let screen = frame.area();
    let height = (choices.len() as u16 + 2).min(screen.height.saturating_sub(2));
    let width = 60.min(screen.width);
    let inner = window(frame, width, height, " process: ↑↓ Enter, Esc ");
    let visible = usize::from(inner.height).max(1);
    let offset = selected.saturating_sub(visible - 1);
    let lines: Vec<Line> = choices
        .iter()
        .enumerate()
        .skip(offset)
        .take(visible)
        .map(|(i, (_, label))| {
            let text = fit(label, inner.width.into());
            if i == selected {
                Line::styled(text, Style::new().add_modifier(Modifier::REVERSED))
            } else {
                Line::from(text)
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

fn detail(frame: &mut Frame, app: &App, key: Key) {
    let screen = frame.area();
    let (width, height) = (
        screen.width.saturating_sub(4),
        screen.height.saturating_sub(2),
    );
    let name = app.names.name(key);
    let inner = window(frame, width, height, &format!(" {name} "));
    let lens = app.lens();
    let shown = app.shown();
    // Summary, blank, two list titles; the lists share the rest.
    let per_list = usize::from(inner.height.saturating_sub(4) / 2).max(1);
    let detail = lens.detail(shown, &app.shown_edges(key), &app.names, key, per_list);
    let whole = lens.whole(shown);
    let name_width = usize::from(inner.width.saturating_sub(21));
    let mut lines = vec![
        Line::from(cut(
            &format!(
                "{}  self {} ({:.1}%)  total {} ({:.1}%)",
                fit(app.names.module(key), 20),
                lens.text(detail.self_value),
                percent(detail.self_value, whole),
                lens.text(detail.total_value),
                percent(detail.total_value, whole),
            ),
            inner.width,
        )),
        Line::from(""),
    ];
    let bold = Style::new().add_modifier(Modifier::BOLD);
    for (title, list, none) in [
        ("callers", &detail.callers, "none: called by no function"),
        ("callees", &detail.callees, "none: calls no function"),
    ] {
        let title = format!(
            "  {:>9}  {:>6}  {title} (share of its total)",
            lens.unit(),
            "share"
        );
        lines.push(Line::styled(cut(&title, inner.width), bold));
        if list.is_empty() {
            lines.push(Line::from(format!("  {none}")));
        }
        for &(other, value) in list {
            lines.push(Line::from(format!(
                "  {:>9}  {:>5.1}%  {}",
                lens.text(value),
                percent(value, detail.total_value),
                fit(app.names.name(other), name_width)
            )));
        }
    }
    frame.render_widget(Paragraph::new(lines), inner);
}
