//! The screen, drawn from the app's state: the status lines, the function
//! table, the top processes, the losses and the keys; the popups over them
//! come from `popup`. Sized for 80x24 and up; names are cut from the left,
//! as the end-of-run tables cut them.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Paragraph, Row, Table},
};

use super::{
    app::App,
    history::DECAY,
    popup,
    view::{Lens, Sort, UNNAMED},
};
use crate::{analysis::percent, output::table::truncate};

/// Widths of a value and of a share column.
const VALUE: u16 = 9;
const SHARE: u16 = 6;
/// Rows of the process table, its header aside.
const PROCESSES: u16 = 3;

pub(super) fn draw(frame: &mut Frame, app: &App) {
    let [status, functions, processes, losses, keys] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(2),
        Constraint::Length(PROCESSES + 1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(status_lines(app, status.width), status);
    function_table(frame, app, functions);
    process_table(frame, app, processes);
    frame.render_widget(loss_line(app, losses.width), losses);
    frame.render_widget(key_line(app), keys);
    popup::draw(frame, app);
}

fn status_lines(app: &App, width: u16) -> Paragraph<'static> {
    let totals = app.totals();
    let mut first = format!("bpfprof top: {}", app.settings.target);
    if let Some(pid) = app.pid {
        let names = &totals.cumulative.names;
        let name = names.get(&pid).map_or(UNNAMED, String::as_str);
        first.push_str(&format!("  process {name} (pid {pid})"));
    }
    let seconds = totals.elapsed.as_secs();
    let window = if app.decaying {
        format!("last {} s", DECAY.as_secs())
    } else {
        "cumulative".into()
    };
    let sort = match app.sort {
        Sort::SelfTime => "self",
        Sort::Total => "total",
    };
    let second = format!(
        "{}:{:02}:{:02}  {} Hz  {} samples  {}  {window}  by {sort}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        app.settings.freq_hz,
        totals.cumulative.on.all.weight,
        app.mode.label(),
    );
    let bar = Style::new().add_modifier(Modifier::REVERSED);
    let mut second = vec![Span::raw(cut(&second, width.saturating_sub(8)))];
    if app.paused() {
        second.push(Span::styled(
            "  PAUSED",
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    Paragraph::new(vec![Line::from(cut(&first, width)), Line::from(second)]).style(bar)
}

/// Column widths: self, self share, total, total share, function, module.
fn columns(width: u16) -> [u16; 6] {
    let fixed = 2 * VALUE + 2 * SHARE + 5;
    let rest = width.saturating_sub(fixed);
    let module = (rest / 3).clamp(8, 24).min(rest);
    [VALUE, SHARE, VALUE, SHARE, rest - module, module]
}

fn function_table(frame: &mut Frame, app: &App, area: Rect) {
    let lens = app.lens();
    let shown = app.shown();
    let visible = usize::from(area.height.saturating_sub(1)).max(1);
    let cursor = app.cursor();
    let offset = cursor.saturating_sub(visible - 1);
    let rows = lens.functions(shown, &app.names, offset + visible);
    let whole = lens.whole(shown);
    let widths = columns(area.width);
    let [.., name_width, module_width] = widths.map(usize::from);
    let table_rows = rows.iter().enumerate().skip(offset).map(|(i, row)| {
        let cells = [
            format!("{:>9}", lens.text(row.self_value)),
            format!("{:>5.1}%", percent(row.self_value, whole)),
            format!("{:>9}", lens.text(row.total_value)),
            format!("{:>5.1}%", percent(row.total_value, whole)),
            fit(app.names.name(row.key), name_width),
            fit(app.names.module(row.key), module_width),
        ];
        let style = if i == cursor {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        Row::new(cells).style(style)
    });
    let table = Table::new(table_rows, widths.map(Constraint::Length))
        .header(Row::new(header(&lens)).style(Style::new().add_modifier(Modifier::BOLD)))
        .column_spacing(1);
    frame.render_widget(table, area);
    if rows.is_empty() {
        let why = match (app.decaying, app.pid) {
            (true, _) => format!("no samples in the last {} s", DECAY.as_secs()),
            (false, Some(_)) => "no samples of this process".into(),
            (false, None) => "waiting for samples".into(),
        };
        let below_header = Rect {
            y: area.y + 1,
            height: area.height.saturating_sub(1),
            ..area
        };
        frame.render_widget(Paragraph::new(format!("  {why}")), below_header);
    }
}

fn header(lens: &Lens) -> [String; 6] {
    let (self_mark, total_mark) = match lens.sort {
        Sort::SelfTime => ("▼", ""),
        Sort::Total => ("", "▼"),
    };
    [
        format!("{:>9}", format!("{self_mark}self")),
        format!("{:>6}", "self%"),
        format!("{:>9}", format!("{total_mark}total")),
        "total%".into(),
        format!("function ({}, {})", lens.mode.label(), lens.unit()),
        "module".into(),
    ]
}

fn process_table(frame: &mut Frame, app: &App, area: Rect) {
    let lens = app.lens();
    let shown = app.shown();
    let processes = lens.processes(shown);
    let whole: u64 = processes.iter().map(|p| p.value).sum();
    let name_width = usize::from(area.width.saturating_sub(31));
    let mut lines = vec![Line::styled(
        format!(
            "  {:>8}  {:>9}  {:>6}  process",
            "pid",
            lens.unit(),
            "share"
        ),
        Style::new().add_modifier(Modifier::BOLD),
    )];
    lines.extend(processes.iter().take(PROCESSES.into()).map(|p| {
        let mark = if app.pid == Some(p.pid) { '>' } else { ' ' };
        Line::from(format!(
            "{mark} {:>8}  {:>9}  {:>5.1}%  {}",
            p.pid,
            lens.text(p.value),
            percent(p.value, whole),
            fit(&p.name, name_width)
        ))
    }));
    frame.render_widget(Paragraph::new(lines), area);
}

fn loss_line(app: &App, width: u16) -> Paragraph<'static> {
    let counted: Vec<String> = app
        .shown()
        .losses()
        .filter(|&(_, n)| n > 0)
        .map(|(loss, n)| format!("{} {n}", loss.label()))
        .collect();
    let text = if counted.is_empty() {
        "losses: none".to_string()
    } else {
        format!("losses: {}", counted.join(", "))
    };
    Paragraph::new(cut(&text, width))
}

fn key_line(app: &App) -> Paragraph<'static> {
    let modes = if app.settings.off_cpu { "  o mode" } else { "" };
    Paragraph::new(format!(
        "q quit  s/t sort  p process{modes}  d decay  space pause  ↑↓ enter: callers"
    ))
    .style(Style::new().add_modifier(Modifier::DIM))
}

/// Cuts a name to `width` from the left (see `truncate`); nothing of it
/// when there is no room at all.
pub(super) fn fit(text: &str, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    truncate(text, width)
}

/// Cuts the end of a line that does not fit, marking the cut.
pub(super) fn cut(text: &str, width: u16) -> String {
    let width = usize::from(width);
    if text.chars().count() <= width {
        return text.to_string();
    }
    let kept: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{kept}…")
}
