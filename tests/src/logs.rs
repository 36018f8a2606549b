//! The server's log output captured in-process: one process-wide `tracing` subscriber
//! writing into a buffer that a test then searches. A test binary installs it once (a
//! file that uses it holds a single test).

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use tracing_subscriber::fmt::MakeWriter;

/// Everything logged since [`CapturedLogs::install`].
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Installs the process-wide subscriber at `filter` (an `EnvFilter` directive, e.g.
    /// `"info,keyhold=trace"`), without colours.
    pub fn install(filter: &str) -> CapturedLogs {
        let logs = CapturedLogs::default();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(logs.clone())
            .try_init()
            .expect("install the subscriber");
        logs
    }

    /// Bytes logged so far.
    pub fn len(&self) -> usize {
        self.0.lock().expect("log buffer").len()
    }

    /// Whether nothing was logged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The log output so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;
    fn make_writer(&'a self) -> CapturedLogs {
        self.clone()
    }
}
