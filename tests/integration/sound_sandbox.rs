//! Sound systems the tests can break on purpose, without disturbing anything else.
//!
//! A process's sound server and ALSA configuration are fixed by its environment
//! (`PULSE_SERVER`, `ALSA_CONFIG_PATH`), which a multi-threaded test binary must not change.
//! So a test that needs its own sound system runs one `#[ignore]`d test of the same binary in
//! a child process ([`run_isolated`]) with that environment, and checks that it passed in time
//! (a hung capture is a failure, not a stuck test run). The child calls [`require_isolated`]
//! first, so running the ignored tests directly fails with an explanation.
//!
//! [`PrivatePulse`] is a PulseAudio server of the test's own (own runtime directory and
//! socket), with one null sink `mic` whose monitor is the default source and a silent stream
//! playing into it, so the monitor delivers audio steadily. It is the only source: when the
//! child unloads the sink, nothing can take its place (PulseAudio moves recordings from a
//! vanished source to another one when there is one).
//!
//! Needs `pulseaudio` and `pulseaudio-utils` (pactl, pacat), and `libasound2-plugins` so that
//! ALSA's default device goes through PulseAudio.

// Helpers unwrap: a panic is the failure report here.
#![allow(clippy::unwrap_used, dead_code)]

use std::fs::File;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Set in the child process of [`run_isolated`].
const ISOLATED_VAR: &str = "AUDIOFP_ISOLATED_TEST";

/// The child may take this long, including a GUI and a capture that starts and fails.
const CHILD_TIMEOUT: Duration = Duration::from_secs(90);

/// Fails unless this test runs in the child process of [`run_isolated`].
pub fn require_isolated() {
    assert!(
        std::env::var_os(ISOLATED_VAR).is_some(),
        "this test runs in a child process of another test, with a sound system of its own; \
         it is not meant to be run directly"
    );
}

/// How a child test run ended.
pub struct ChildRun {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it printed (stdout then stderr).
    pub output: String,
}

/// Runs the ignored test `name` (its path in this test binary, `module::test`) in a child
/// process with `envs`, as the user `uid` if given; fails if it does not pass within
/// [`CHILD_TIMEOUT`] (it is killed).
pub fn run_isolated(name: &str, envs: &[(&str, &str)], uid: Option<u32>) -> ChildRun {
    let logs = tempfile::tempdir().unwrap();
    let stdout_path = logs.path().join("stdout");
    let stderr_path = logs.path().join("stderr");
    // Another user may not be able to reach the test binary where it was built (a checkout
    // under a private home): that child runs a world-readable copy instead.
    let exe_dir = tempfile::Builder::new()
        .prefix("audiofp-child")
        .tempdir()
        .unwrap();
    let exe = match uid {
        Some(_) => {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(exe_dir.path(), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            let copy = exe_dir.path().join("test-binary");
            std::fs::copy(std::env::current_exe().unwrap(), &copy).unwrap();
            std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
            copy
        }
        None => std::env::current_exe().unwrap(),
    };
    let mut command = Command::new(&exe);
    command
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ISOLATED_VAR, "1")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap());
    if let Some(uid) = uid {
        command.uid(uid).gid(uid).current_dir(exe_dir.path());
    }
    // The copy may still be open for writing in a child another test thread forked while it
    // was written (the fork inherits the descriptor until it execs): exec then fails with
    // ETXTBSY for a moment. Try again briefly.
    let mut child = {
        let mut tries = 0;
        loop {
            match command.spawn() {
                Ok(child) => break child,
                Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(err) => panic!("starting {}: {err}", exe.display()),
            }
        }
    };
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > CHILD_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = format!(
        "{}{}",
        std::fs::read_to_string(&stdout_path).unwrap_or_default(),
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    let Some(status) = status else {
        panic!("`{name}` hung: killed after {CHILD_TIMEOUT:?}\n{output}");
    };
    assert!(status.success(), "`{name}` failed ({status}):\n{output}");
    // A name that matches no test "passes" too.
    assert!(
        output.contains("test result: ok. 1 passed"),
        "`{name}` did not run:\n{output}"
    );
    ChildRun { status, output }
}

/// Whether this process runs as root (which no file permission stops).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// Kills a helper process when the test ends, however it ends.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// A PulseAudio server of the test's own; stopped when dropped.
pub struct PrivatePulse {
    // Dropped in this order: the player, the server, then its directory.
    _keepalive: Guard,
    _daemon: Guard,
    dir: TempDir,
    server: String,
}

impl PrivatePulse {
    /// Starts the server and waits until the null sink `mic` runs.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("audiofp-pulse")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("native");
        let server = format!("unix:{}", socket.display());
        let log = dir.path().join("pulse.log");
        let daemon = Command::new("pulseaudio")
            .args([
                "--daemonize=no",
                "--exit-idle-time=-1",
                "-n",
                &format!(
                    "--load=module-native-protocol-unix socket={}",
                    socket.display()
                ),
                "--load=module-null-sink sink_name=mic rate=48000 channels=2",
                &format!("--log-target=file:{}", log.display()),
            ])
            .env("XDG_RUNTIME_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio is needed (apt-get install pulseaudio pulseaudio-utils)");
        let mut daemon = Guard(daemon);
        let started = Instant::now();
        while !pactl_ok(&server, &["info"]) {
            let exited = daemon.0.try_wait().unwrap();
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(15),
                "the private PulseAudio did not start ({exited:?}):\n{}",
                read_log(&log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(pactl_ok(&server, &["set-default-source", "mic.monitor"]));
        // Without a stream playing, a null sink runs in 2 s blocks.
        let keepalive = Command::new("pacat")
            .args([
                "--playback",
                "--latency-msec=20",
                "--format=s16le",
                "--rate=48000",
                "--channels=2",
                "--device=mic",
                "/dev/zero",
            ])
            .env("PULSE_SERVER", &server)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pacat (pulseaudio-utils) is needed");
        let pulse = Self {
            _keepalive: Guard(keepalive),
            _daemon: daemon,
            dir,
            server,
        };
        let started = Instant::now();
        while !pulse.sink_is_running() {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the private null sink does not run:\n{}",
                read_log(&log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pulse
    }

    /// `PULSE_SERVER` for clients of this server.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Its log, for failure reports.
    pub fn log(&self) -> String {
        read_log(&self.dir.path().join("pulse.log"))
    }

    fn sink_is_running(&self) -> bool {
        Command::new("pactl")
            .args(["list", "short", "sinks"])
            .env("PULSE_SERVER", &self.server)
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("RUNNING"))
    }
}

/// Runs `pactl` on the server in `PULSE_SERVER` (the child's environment); fails if it fails.
pub fn pactl(args: &[&str]) {
    let status = Command::new("pactl").args(args).status().unwrap();
    assert!(status.success(), "pactl {args:?}: {status}");
}

fn pactl_ok(server: &str, args: &[&str]) -> bool {
    Command::new("pactl")
        .args(args)
        .env("PULSE_SERVER", server)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| format!("(no log: {err})"))
}

/// An ALSA configuration whose default capture device cannot be opened for lack of
/// permission: the ALSA `file` plugin reading a file this user may not read, so opening the
/// device fails with EACCES exactly as a `/dev/snd` node of a user outside the `audio` group
/// does. A child process uses it through `ALSA_CONFIG_PATH` (as another user when this one is
/// root, which file permissions do not stop).
pub struct LockedAlsaDevice {
    dir: TempDir,
    /// The configuration file.
    pub config: PathBuf,
}

impl LockedAlsaDevice {
    /// Writes the configuration and the unreadable "device".
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix("audiofp-alsa")
            .tempdir()
            .unwrap();
        // Another user (the child) must be able to read the configuration.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let device = dir.path().join("pcm-capture");
        std::fs::write(&device, vec![0u8; 48_000 * 4]).unwrap();
        std::fs::set_permissions(&device, std::fs::Permissions::from_mode(0o000)).unwrap();
        let config = dir.path().join("asound.conf");
        std::fs::write(
            &config,
            format!(
                "pcm.!default {{\n    type file\n    slave.pcm {{ type null }}\n    \
                 file \"/dev/null\"\n    infile \"{}\"\n    format \"raw\"\n}}\n",
                device.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
        Self { dir, config }
    }

    /// The user to run the child as: `nobody` when this process is root, else this user.
    pub fn child_uid(&self) -> Option<u32> {
        running_as_root().then_some(65_534)
    }
}
