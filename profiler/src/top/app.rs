//! The view's state and what keys do to it: intervals come in through
//! [`App::add_interval`], keys through [`App::handle_key`]; the screen is
//! drawn from it by `draw`. No terminal here, so tests drive it whole.

use std::{borrow::Cow, time::Duration};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{
    TopSettings,
    aggregate::{Edges, Key, Names, Tables},
    history::{History, Totals},
    interval,
    view::{Lens, Mode, Sort},
};
use crate::profile::Profile;

/// What the loop does after a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Quit,
}

/// A window over the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Popup {
    None,
    /// The process list `p` opens: choices as they were when it opened
    /// (None for all processes), and the one under the cursor.
    Processes {
        choices: Vec<(Option<u32>, String)>,
        selected: usize,
    },
    /// A function's callers and callees.
    Detail(Key),
}

/// Rows PageUp and PageDown move by.
const PAGE: usize = 10;

#[derive(Debug)]
pub(super) struct App {
    pub(super) settings: TopSettings,
    pub(super) names: Names,
    history: History,
    /// What the screen shows while paused.
    frozen: Option<Totals>,
    pub(super) mode: Mode,
    pub(super) sort: Sort,
    /// The last few seconds (as perf top), or everything since the start.
    pub(super) decaying: bool,
    /// The process the functions are filtered to.
    pub(super) pid: Option<u32>,
    /// Row of the function table under the cursor.
    pub(super) selected: usize,
    pub(super) popup: Popup,
}

impl App {
    pub(super) fn new(settings: TopSettings) -> App {
        App {
            history: History::new(settings.interval),
            settings,
            names: Names::default(),
            frozen: None,
            mode: Mode::OnCpu,
            sort: Sort::SelfTime,
            decaying: true,
            pid: None,
            selected: 0,
            popup: Popup::None,
        }
    }

    /// Counts what one interval added (its own profile).
    pub(super) fn add_interval(&mut self, profile: &Profile, elapsed: Duration) {
        let interval = interval::interval(profile, &mut self.names);
        self.history.push(interval, elapsed, &self.names);
    }

    pub(super) fn paused(&self) -> bool {
        self.frozen.is_some()
    }

    /// The sums the screen shows: frozen while paused.
    pub(super) fn totals(&self) -> &Totals {
        self.frozen
            .as_ref()
            .unwrap_or_else(|| self.history.totals())
    }

    /// The sum the tables show: decaying or cumulative.
    pub(super) fn shown(&self) -> &Tables {
        let totals = self.totals();
        if self.decaying {
            &totals.recent
        } else {
            &totals.cumulative
        }
    }

    /// The call edges to and from `key` over the same span: summed since
    /// the start, or added up from the window's stacks.
    pub(super) fn shown_edges(&self, key: Key) -> Cow<'_, Edges> {
        let totals = self.totals();
        if self.decaying {
            let window = totals.window.iter().map(|interval| &**interval);
            Cow::Owned(interval::edges_of(key, window, &self.names))
        } else {
            Cow::Borrowed(&totals.cumulative_edges)
        }
    }

    pub(super) fn lens(&self) -> Lens {
        Lens {
            mode: self.mode,
            sort: self.sort,
            pid: self.pid,
            period_us: 1e6 / self.settings.freq_hz.max(1) as f64,
        }
    }

    pub(super) fn handle_key(&mut self, key: KeyEvent) -> Flow {
        if key.kind == KeyEventKind::Release {
            return Flow::Continue;
        }
        let ctrl_c =
            key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl_c || key.code == KeyCode::Char('q') {
            return Flow::Quit;
        }
        match &mut self.popup {
            Popup::None => return self.main_key(key.code),
            Popup::Processes { choices, selected } => match key.code {
                KeyCode::Up => *selected = selected.saturating_sub(1),
                KeyCode::Down => *selected = (*selected + 1).min(choices.len() - 1),
                KeyCode::Enter => {
                    self.pid = choices[*selected].0;
                    self.selected = 0;
                    self.popup = Popup::None;
                }
                KeyCode::Esc | KeyCode::Char('p') => self.popup = Popup::None,
                _ => {}
            },
            Popup::Detail(_) => {
                if matches!(key.code, KeyCode::Esc | KeyCode::Enter) {
                    self.popup = Popup::None;
                }
            }
        }
        Flow::Continue
    }

    fn main_key(&mut self, code: KeyCode) -> Flow {
        match code {
            KeyCode::Esc => return Flow::Quit,
            KeyCode::Char('s') => self.resort(Sort::SelfTime),
            KeyCode::Char('t') => self.resort(Sort::Total),
            KeyCode::Char('o') => {
                self.mode = self.mode.next(self.settings.off_cpu);
                self.selected = 0;
            }
            KeyCode::Char('d') => {
                self.decaying = !self.decaying;
                self.selected = 0;
            }
            KeyCode::Char(' ') => {
                self.frozen = match self.frozen {
                    Some(_) => None,
                    None => Some(self.history.totals().clone()),
                }
            }
            KeyCode::Char('p') => self.open_processes(),
            KeyCode::Up => self.select(-1),
            KeyCode::Down => self.select(1),
            KeyCode::PageUp => self.select(-(PAGE as isize)),
            KeyCode::PageDown => self.select(PAGE as isize),
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.select(isize::MAX),
            KeyCode::Enter => {
                if let Some(row) = self.selected_function() {
                    self.popup = Popup::Detail(row);
                }
            }
            _ => {}
        }
        Flow::Continue
    }

    fn resort(&mut self, sort: Sort) {
        self.sort = sort;
        self.selected = 0;
    }

    fn select(&mut self, by: isize) {
        let last = self.lens().function_count(self.shown()).saturating_sub(1);
        self.selected = self.selected.saturating_add_signed(by).min(last);
    }

    /// The row under the cursor, among the rows there are now (fewer
    /// than when it moved, if functions left the window since).
    pub(super) fn cursor(&self) -> usize {
        let count = self.lens().function_count(self.shown());
        self.selected.min(count.saturating_sub(1))
    }

    /// The function under the cursor.
    pub(super) fn selected_function(&self) -> Option<Key> {
        let cursor = self.cursor();
        let rows = self.lens().functions(self.shown(), &self.names, cursor + 1);
        rows.get(cursor).map(|row| row.key)
    }

    fn open_processes(&mut self) {
        let mut choices = vec![(None, "all processes".to_string())];
        let rows = Lens {
            pid: None,
            ..self.lens()
        }
        .processes(self.shown());
        choices.extend(
            rows.into_iter()
                .map(|p| (Some(p.pid), format!("{:>8}  {}", p.pid, p.name))),
        );
        let selected = choices
            .iter()
            .position(|(pid, _)| *pid == self.pid)
            .unwrap_or(0);
        self.popup = Popup::Processes { choices, selected };
    }
}
