//! Real encoded media for synthetic publishers: VP8 at three simulcast sizes and Opus, encoded
//! once by Debian's `ffmpeg` (libvpx, libopus) into a cache directory, then read back frame by
//! frame from IVF and Ogg files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// One simulcast layer: its rid and frame size.
pub const LAYERS: [(&str, u32, u32, u32); 3] = [
    ("l", 320, 180, 150),
    ("m", 640, 360, 500),
    ("h", 1280, 720, 1500),
];
pub const FPS: u32 = 30;
const SECONDS: u32 = 10;

/// A looped clip: video frames per layer (same count and timing in every layer) and 20 ms
/// Opus packets.
#[derive(Debug, Clone)]
pub struct Clip {
    /// `video[layer][frame]`, layers in the order of [`LAYERS`].
    pub video: Vec<Vec<Frame>>,
    pub audio: Vec<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct Frame {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

impl Clip {
    /// Loads the clip from `dir`, encoding it first if it is not there.
    pub fn load_or_encode(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut video = Vec::new();
        for (rid, w, h, kbps) in LAYERS {
            let path = dir.join(format!("{rid}.ivf"));
            if !path.exists() {
                encode_then_rename(&path, |tmp| encode_vp8(tmp, w, h, kbps))?;
            }
            video.push(read_ivf(&std::fs::read(&path)?)?);
        }
        let opus = dir.join("audio.ogg");
        if !opus.exists() {
            encode_then_rename(&opus, encode_opus)?;
        }
        let audio = read_ogg_packets(&std::fs::read(&opus)?)?
            .into_iter()
            // The first two packets are the Opus headers.
            .skip(2)
            .collect::<Vec<_>>();
        if video.iter().any(|v| v.is_empty()) || audio.is_empty() {
            bail!("the encoded clip in {} is empty", dir.display());
        }
        let frames = video.iter().map(Vec::len).min().unwrap_or(0);
        for layer in &mut video {
            layer.truncate(frames);
        }
        Ok(Self { video, audio })
    }

    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("myriad-bench-media")
    }
}

/// Encodes into a file of this process's own and renames it into place, so that a run (or a
/// test) reading the cache never sees a file another one is still writing.
fn encode_then_rename(
    path: &Path,
    encode: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("bin");
    let tmp = path.with_extension(format!("{}.{ext}", std::process::id()));
    encode(&tmp)?;
    std::fs::rename(&tmp, path).with_context(|| format!("moving {} into place", tmp.display()))
}

fn ffmpeg(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .context("running ffmpeg (scripts/setup --bench installs it)")?;
    if !out.status.success() {
        bail!("ffmpeg failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn encode_vp8(path: &Path, width: u32, height: u32, kbps: u32) -> anyhow::Result<()> {
    let src = format!("testsrc2=size={width}x{height}:rate={FPS}");
    let rate = format!("{kbps}k");
    let t = SECONDS.to_string();
    let path = path.to_string_lossy();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &src,
        "-t",
        &t,
        "-c:v",
        "libvpx",
        "-b:v",
        &rate,
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-g",
        "90",
        "-f",
        "ivf",
        &path,
    ])
}

fn encode_opus(path: &Path) -> anyhow::Result<()> {
    let t = SECONDS.to_string();
    let path = path.to_string_lossy();
    // Speech-like: a tone that changes pitch, so packets differ.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:beep_factor=4",
        "-t",
        &t,
        "-ac",
        "1",
        "-ar",
        "48000",
        "-c:a",
        "libopus",
        "-b:a",
        "32k",
        "-frame_duration",
        "20",
        "-f",
        "ogg",
        &path,
    ])
}

/// Frames of an IVF file (32-byte file header, then 12-byte frame headers).
pub fn read_ivf(bytes: &[u8]) -> anyhow::Result<Vec<Frame>> {
    if bytes.len() < 32 || &bytes[..4] != b"DKIF" {
        bail!("not an IVF file");
    }
    let header_len = u16::from_le_bytes([bytes[6], bytes[7]]) as usize;
    let mut at = header_len;
    let mut frames = Vec::new();
    while at + 12 <= bytes.len() {
        let len =
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let data = bytes
            .get(at + 12..at + 12 + len)
            .context("truncated IVF frame")?;
        frames.push(Frame {
            keyframe: data.first().is_some_and(|b| b & 1 == 0),
            data: data.to_vec(),
        });
        at += 12 + len;
    }
    Ok(frames)
}

/// The packets of an Ogg stream (RFC 3533 pages, lacing values joined into packets).
pub fn read_ogg_packets(bytes: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut at = 0;
    while at + 27 <= bytes.len() {
        if &bytes[at..at + 4] != b"OggS" {
            bail!("bad Ogg page at byte {at}");
        }
        let segments = bytes[at + 26] as usize;
        let table = bytes
            .get(at + 27..at + 27 + segments)
            .context("truncated Ogg page")?;
        let mut body = at + 27 + segments;
        for &lace in table {
            let chunk = bytes
                .get(body..body + lace as usize)
                .context("truncated Ogg segment")?;
            current.extend_from_slice(chunk);
            body += lace as usize;
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = body;
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ivf_frames() {
        let mut ivf = b"DKIF".to_vec();
        ivf.extend([0, 0, 32, 0]);
        ivf.resize(32, 0);
        for (len, first) in [(3u32, 0x10u8), (2, 0x11)] {
            ivf.extend(len.to_le_bytes());
            ivf.extend([0u8; 8]);
            ivf.push(first);
            ivf.extend(std::iter::repeat_n(7u8, len as usize - 1));
        }
        let frames = read_ivf(&ivf).unwrap();
        assert_eq!(frames.len(), 2);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        assert!(read_ivf(b"nope").is_err());
        assert!(read_ivf(&ivf[..ivf.len() - 1]).is_err());
    }

    #[test]
    fn joins_ogg_lacing_into_packets() {
        // One page: a 300-byte packet (255 + 45) and a 2-byte packet.
        let mut page = b"OggS".to_vec();
        page.resize(26, 0);
        page.push(3);
        page.extend([255, 45, 2]);
        page.extend(std::iter::repeat_n(1u8, 300));
        page.extend([9, 9]);
        let packets = read_ogg_packets(&page).unwrap();
        assert_eq!(
            packets.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![300, 2]
        );
        assert!(read_ogg_packets(b"OggX_____________________________").is_err());
    }
}
