//! Simulcast layer choice per subscriber: pure functions of what the publisher sends, what
//! the subscriber shows and what its downlink can carry.

/// One simulcast layer (or the only encoding) of a published video track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// Measured bitrate, bits per second.
    pub bitrate_bps: u64,
    /// Frame height from the last keyframe; 0 while unknown.
    pub height: u32,
}

/// A video track the subscriber should get, most important first.
#[derive(Debug, Clone)]
pub struct LayerDemand<'a> {
    /// The layers being received now, from the lowest to the highest.
    pub layers: &'a [LayerInfo],
    /// The tallest tile the subscriber shows this track in.
    pub max_height: u32,
}

/// For each demanded track, the index of the layer to forward (or `None` for no layer).
///
/// Every track first gets its lowest layer (a subscriber that cannot afford even that still
/// gets the lowest layer of its most important track). Then, in order of importance, tracks
/// move up while the budget allows, until the layer is at least as tall as the tile.
pub fn choose_layers(demands: &[LayerDemand<'_>], budget_bps: u64) -> Vec<Option<usize>> {
    let mut choice: Vec<Option<usize>> = Vec::with_capacity(demands.len());
    let mut spent = 0u64;
    for (i, d) in demands.iter().enumerate() {
        match d.layers.first() {
            Some(l) if i == 0 || spent + l.bitrate_bps <= budget_bps => {
                spent += l.bitrate_bps;
                choice.push(Some(0));
            }
            _ => choice.push(None),
        }
    }
    for (d, c) in demands.iter().zip(choice.iter_mut()) {
        let Some(mut idx) = *c else { continue };
        while idx + 1 < d.layers.len() {
            let cur = d.layers[idx];
            if cur.height != 0 && cur.height >= d.max_height {
                break;
            }
            let next = d.layers[idx + 1];
            let extra = next.bitrate_bps.saturating_sub(cur.bitrate_bps);
            if spent + extra > budget_bps {
                break;
            }
            spent += extra;
            idx += 1;
        }
        *c = Some(idx);
    }
    choice
}

/// Width and height of a VP8 key frame from its first RTP packet: the uncompressed header
/// (RFC 6386 §9.1) after the payload descriptor (RFC 7741 §4.2).
pub fn vp8_keyframe_size(payload: &[u8]) -> Option<(u16, u16)> {
    let frame = payload.get(vp8_descriptor_len(payload)?..)?;
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

fn vp8_descriptor_len(payload: &[u8]) -> Option<usize> {
    let first = *payload.first()?;
    if first & 0x80 == 0 {
        return Some(1);
    }
    let ext = *payload.get(1)?;
    let mut len = 2;
    if ext & 0x80 != 0 {
        // PictureID: one byte, or two when its M bit is set.
        len += if *payload.get(len)? & 0x80 != 0 { 2 } else { 1 };
    }
    if ext & 0x40 != 0 {
        len += 1; // TL0PICIDX
    }
    if ext & 0x30 != 0 {
        len += 1; // TID / KEYIDX
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIMULCAST: [LayerInfo; 3] = [
        LayerInfo {
            bitrate_bps: 150_000,
            height: 180,
        },
        LayerInfo {
            bitrate_bps: 500_000,
            height: 360,
        },
        LayerInfo {
            bitrate_bps: 1_500_000,
            height: 720,
        },
    ];

    #[test]
    fn picks_the_smallest_layer_that_fills_the_tile() {
        let d = [LayerDemand {
            layers: &SIMULCAST,
            max_height: 300,
        }];
        assert_eq!(choose_layers(&d, 10_000_000), vec![Some(1)]);
        let d = [LayerDemand {
            layers: &SIMULCAST,
            max_height: 1080,
        }];
        assert_eq!(choose_layers(&d, 10_000_000), vec![Some(2)]);
    }

    #[test]
    fn a_thin_downlink_gets_lower_layers_and_priority_wins() {
        let d = [
            LayerDemand {
                layers: &SIMULCAST,
                max_height: 720,
            },
            LayerDemand {
                layers: &SIMULCAST,
                max_height: 720,
            },
        ];
        // 150k + 150k base, then the first track climbs to 500k: 650k.
        assert_eq!(choose_layers(&d, 700_000), vec![Some(1), Some(0)]);
        assert_eq!(choose_layers(&d, 100_000), vec![Some(0), None]);
    }

    #[test]
    fn unknown_heights_climb_by_budget() {
        let layers = [
            LayerInfo {
                bitrate_bps: 100_000,
                height: 0,
            },
            LayerInfo {
                bitrate_bps: 300_000,
                height: 0,
            },
        ];
        let d = [LayerDemand {
            layers: &layers,
            max_height: 360,
        }];
        assert_eq!(choose_layers(&d, 1_000_000), vec![Some(1)]);
        assert_eq!(
            choose_layers(
                &[LayerDemand {
                    layers: &[],
                    max_height: 1
                }],
                1
            ),
            vec![None]
        );
    }

    #[test]
    fn reads_vp8_keyframe_dimensions() {
        // Descriptor: X, then I with a 15-bit picture id, L and T; then the key frame header.
        let packet = [
            0x90, 0xe0, 0x81, 0x23, 0x07, 0x20, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02,
            0x68, 0x01, 0, 0,
        ];
        assert_eq!(vp8_keyframe_size(&packet), Some((640, 360)));
        // The same frame behind the one-byte descriptor.
        assert_eq!(
            vp8_keyframe_size(&[&[0x10][..], &packet[6..]].concat()),
            Some((640, 360))
        );
        let mut inter = packet;
        inter[6] |= 1;
        assert_eq!(vp8_keyframe_size(&inter), None);
        assert_eq!(vp8_keyframe_size(&packet[..9]), None);
        assert_eq!(vp8_keyframe_size(&packet[..3]), None);
    }
}
