// What a photo may be, read from its first bytes before anything decodes it: the formats, pixel
// limits and messages of the server's edge/preprocess.py, which the server puts in the page's
// config (pwa/pages.py photo_limits), never copied here. A photo past its limit would cost the
// phone the memory it would cost the server (a 2 KB WebP can decode to 250 MB), so the phone
// refuses it too, in the server's words. Pure functions: node --test runs them
// (tests/js/photo-limits.test.mjs), against the server's own answers for the same files.

import { draftScale } from "./preprocess.js";

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// JPEG start-of-frame markers (0xC0-0xCF but DHT, JPG and DAC); these four are progressive.
const NOT_SOF = new Set([0xc4, 0xc8, 0xcc]);
const PROGRESSIVE_SOF = new Set([0xc2, 0xc6, 0xca, 0xce]);
// ISO-BMFF brands of HEIC/HEIF (edge/preprocess.py HEIF_BRANDS).
const HEIF_BRANDS = new Set(["heic", "heix", "hevc", "hevx", "heim", "heis", "mif1", "msf1"]);

const ascii = (bytes, at, length) => String.fromCharCode(...bytes.subarray(at, at + length));
const be16 = (bytes, at) => (bytes[at] << 8) | bytes[at + 1];
const be32 = (bytes, at) => ((bytes[at] << 24) >>> 0) + (bytes[at + 1] << 16) + (bytes[at + 2] << 8) + bytes[at + 3];
const le24 = (bytes, at) => bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16);

// A JPEG's frame (stored size, component count, progressive) and its first scan's component
// count (null when the bytes hold no scan), or null without a frame header.
export function jpegHeader(bytes) {
  let at = 2;
  let frame = null;
  while (at + 4 < bytes.length) {
    if (bytes[at] !== 0xff) break;
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at += 1; // fill byte
    } else if (marker === 0xda) {
      return frame && { ...frame, scanComponents: bytes[at + 4] };
    } else if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      at += 2; // markers without a length
    } else {
      if (marker >= 0xc0 && marker <= 0xcf && !NOT_SOF.has(marker) && at + 9 < bytes.length) {
        frame = { width: be16(bytes, at + 7), height: be16(bytes, at + 5), components: bytes[at + 9],
          progressive: PROGRESSIVE_SOF.has(marker) };
      }
      at += 2 + be16(bytes, at + 2);
    }
  }
  return frame && { ...frame, scanComponents: null };
}

// A WebP's canvas size from its first chunk (VP8X, lossless VP8L, or lossy VP8), or null.
function webpSize(bytes) {
  const chunk = ascii(bytes, 12, 4);
  if (chunk === "VP8X" && bytes.length >= 30) return { width: le24(bytes, 24) + 1, height: le24(bytes, 27) + 1 };
  if (chunk === "VP8L" && bytes.length >= 25 && bytes[20] === 0x2f) {
    return { width: 1 + (bytes[21] | ((bytes[22] & 0x3f) << 8)),
      height: 1 + ((bytes[22] >> 6) | (bytes[23] << 2) | ((bytes[24] & 0x0f) << 10)) };
  }
  if (chunk === "VP8 " && bytes.length >= 30) {
    return { width: (bytes[26] | (bytes[27] << 8)) & 0x3fff, height: (bytes[28] | (bytes[29] << 8)) & 0x3fff };
  }
  return null;
}

// {format, width, height, ...} from a photo's first bytes: format "JPEG" (with progressive and
// separateScans), "PNG", "WEBP" or "HEIF"; width and height are null when the header is damaged.
// null for anything else (the server reads nothing else either).
export function photoHeader(bytes) {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    const frame = jpegHeader(bytes);
    if (!frame) return { format: "JPEG", width: null, height: null };
    const separateScans = frame.scanComponents === null || frame.scanComponents < frame.components;
    return { format: "JPEG", width: frame.width, height: frame.height, progressive: frame.progressive, separateScans };
  }
  if (bytes.length >= 24 && PNG_SIGNATURE.every((value, i) => bytes[i] === value)) {
    return { format: "PNG", width: be32(bytes, 16), height: be32(bytes, 20) };
  }
  if (bytes.length >= 16 && ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 4) === "WEBP") {
    return { format: "WEBP", width: null, height: null, ...webpSize(bytes) };
  }
  if (bytes.length >= 12 && ascii(bytes, 4, 4) === "ftyp" && HEIF_BRANDS.has(ascii(bytes, 8, 4))) {
    return { format: "HEIF" };
  }
  return null;
}

function fill(rule, width, height) {
  return rule.message.replace("{width}", String(width)).replace("{height}", String(height));
}

// The kind of photo whose limit applies before decoding, as edge/preprocess.py names it.
function kindOf(header) {
  if (header.format !== "JPEG") return header.format.toLowerCase();
  if (header.progressive) return "progressive_jpeg";
  return header.separateScans ? "multiscan_jpeg" : "jpeg";
}

// The server's message refusing this photo (for a model input of `size`), or null to decode it.
// `limits`: the page config's photoLimits. The checks run in the server's order: the format,
// Pillow's guard, the kind's limit, then what a JPEG's reduced decode still holds.
export function photoRefusal(header, size, limits) {
  if (header?.format === "HEIF") return limits.heif;
  if (!header || !limits.formats.includes(header.format)) return limits.unsupported;
  const { width, height } = header;
  if (!width || !height) return null; // a damaged header: the decoder gives its own refusal
  if (width * height > limits.guard.limit) return limits.guard.message;
  const rule = limits.kinds[kindOf(header)];
  if (width * height > rule.limit) return fill(rule, width, height);
  if (header.format === "JPEG") {
    const scale = draftScale(width, height, size);
    const reduced = limits.kinds.reduced_jpeg;
    if (Math.ceil(width / scale) * Math.ceil(height / scale) > reduced.limit) return fill(reduced, width, height);
  }
  return null;
}
