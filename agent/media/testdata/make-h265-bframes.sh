#!/bin/sh
# Makes h265-bframes.mp4: 2 s of H.265 with B-frames (pictures reordered,
# VUI timing present), which the embedded camerasim clips lack. Fragmented
# MP4 with signed composition offsets, as camerasim.LoadClip reads it.
set -e
cd "$(dirname "$0")"
ffmpeg -nostdin -hide_banner -loglevel error -y \
	-f lavfi -i testsrc2=size=160x96:rate=25 -t 2 \
	-c:v libx265 -preset fast -pix_fmt yuv420p \
	-x265-params "bframes=3:b-adapt=0:keyint=25:min-keyint=25:scenecut=0:log-level=error" \
	-an -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets \
	h265-bframes.mp4
