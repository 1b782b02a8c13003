//! What a pushed process is, as OpenTelemetry names it: its executable's
//! path, and the container and Kubernetes pod its cgroup path shows. Read
//! from /proc once per process while it is seen, and forgotten a window
//! after it is last seen.

use std::collections::HashMap;

use super::window::ProcessAttributes;
use crate::{
    profile::printable,
    untrusted_file::{self},
};

/// /proc/PID/cgroup is a line per hierarchy; a deep Kubernetes path is a
/// few hundred bytes.
const CGROUP_LIMIT: u64 = 16 << 10;

#[derive(Default)]
pub(crate) struct ProcessCache {
    /// The processes of the window being built, and of the one before.
    current: HashMap<u32, ProcessAttributes>,
    previous: HashMap<u32, ProcessAttributes>,
}

impl ProcessCache {
    /// Forgets the processes not seen in the last window.
    pub(crate) fn start_window(&mut self) {
        self.previous = std::mem::take(&mut self.current);
    }

    pub(crate) fn attributes(&mut self, tgid: u32, name: &str) -> ProcessAttributes {
        let known = self
            .previous
            .remove(&tgid)
            .filter(|a| a.executable_name == name);
        let attributes = known.unwrap_or_else(|| read(tgid, name));
        self.current.insert(tgid, attributes.clone());
        attributes
    }
}

fn read(tgid: u32, name: &str) -> ProcessAttributes {
    let executable_path = std::fs::read_link(format!("/proc/{tgid}/exe"))
        .ok()
        .map(|p| printable(&p.to_string_lossy()).into_owned());
    let cgroup = untrusted_file::open(format!("/proc/{tgid}/cgroup").as_ref(), false)
        .ok()
        .and_then(|f| untrusted_file::read_whole(f, CGROUP_LIMIT).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let (container_id, pod_uid) = from_cgroup(&cgroup);
    ProcessAttributes {
        executable_name: name.to_string(),
        executable_path,
        container_id,
        pod_uid,
    }
}

/// The container id (64 hex digits, as Docker, containerd, CRI-O and
/// Podman name their scopes) and pod uid (`pod<uid>`, with `_` for `-`
/// under systemd's cgroup driver) in a /proc/PID/cgroup text.
pub(crate) fn from_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let mut container = None;
    let mut pod = None;
    for line in text.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or("");
        for segment in path.split('/') {
            let segment = segment.strip_suffix(".scope").unwrap_or(segment);
            let segment = segment.strip_suffix(".slice").unwrap_or(segment);
            let id = segment.rsplit(['-', ':']).next().unwrap_or("");
            if id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                container = Some(id.to_ascii_lowercase());
            }
            if let Some(at) = segment.rfind("pod") {
                let uid = segment[at + 3..].replace('_', "-");
                if is_uuid(&uid) {
                    pod = Some(uid.to_ascii_lowercase());
                }
            }
        }
    }
    (container, pod)
}

fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::from_cgroup;

    const ID: &str = "3f2b6a1e9c8d7f6e5d4c3b2a19081726354453627180a9b8c7d6e5f4a3b2c1d0";

    #[test]
    fn reads_docker_and_kubernetes_cgroup_paths() {
        let docker = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(from_cgroup(&docker), (Some(ID.into()), None));
        let systemd_k8s = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b3c4d_1111_2222_3333_444455556666.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            from_cgroup(&systemd_k8s),
            (
                Some(ID.into()),
                Some("1a2b3c4d-1111-2222-3333-444455556666".into())
            )
        );
        let cgroupfs_k8s =
            format!("12:memory:/kubepods/besteffort/pod1a2b3c4d-1111-2222-3333-444455556666/{ID}");
        assert_eq!(
            from_cgroup(&cgroupfs_k8s),
            (
                Some(ID.into()),
                Some("1a2b3c4d-1111-2222-3333-444455556666".into())
            )
        );
    }

    #[test]
    fn a_plain_session_has_neither() {
        let text = "0::/user.slice/user-0.slice/session-3.scope\n";
        assert_eq!(from_cgroup(text), (None, None));
    }
}
