// A photo to model input in the browser, the same steps as edge/preprocess.py: EXIF orientation,
// RGB, the JPEG draft reduction, centre square, Pillow's bilinear resize, raw uint8 RGB 0-255.
// Pure arithmetic (node --test runs it, tests/js/preprocess.test.mjs); decode.js gets the
// decoded pixels from the browser.
//
// Pillow's draft mode decodes a large JPEG at 1/2, 1/4 or 1/8 scale in the DCT. decode.js asks
// the browser for that same decode (WebCodecs' ImageDecoder); where a browser cannot, the full
// decode is averaged over the same scale's blocks instead (boxReduce), which keeps the pixels
// within a level or two of the server's (ARCHITECTURE.md, "On the phone").

// Pillow resamples with 22-bit fixed-point coefficients (libImaging/Resample.c, PRECISION_BITS).
const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);
const DRAFT_OVERSAMPLE = 2; // edge/preprocess.py: never below twice the input size
const DRAFT_SCALES = [8, 4, 2, 1];

// The reduction Pillow's JPEG draft() picks for a request of (want, want): the largest of
// 1/8, 1/4, 1/2 that keeps both sides at least `want`.
export function draftScale(width, height, size) {
  const want = size * DRAFT_OVERSAMPLE;
  const fits = Math.min(Math.floor(width / want), Math.floor(height / want));
  return DRAFT_SCALES.find((scale) => fits >= scale) ?? 1;
}

// RGBA (canvas ImageData) to packed RGB.
export function rgbaToRgb(rgba) {
  const rgb = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    rgb[j] = rgba[i];
    rgb[j + 1] = rgba[i + 1];
    rgb[j + 2] = rgba[i + 2];
  }
  return rgb;
}

// Average scale x scale blocks of an RGB image; sides round up as libjpeg's scaled output does,
// and blocks past the edge repeat the last row or column.
export function boxReduce(rgb, width, height, scale) {
  if (scale === 1) return { data: rgb, width, height };
  const outW = Math.ceil(width / scale);
  const outH = Math.ceil(height / scale);
  const out = new Uint8Array(outW * outH * 3);
  const count = scale * scale;
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let dy = 0; dy < scale; dy++) {
          const y = Math.min(oy * scale + dy, height - 1);
          for (let dx = 0; dx < scale; dx++) {
            const x = Math.min(ox * scale + dx, width - 1);
            sum += rgb[(y * width + x) * 3 + c];
          }
        }
        out[(oy * outW + ox) * 3 + c] = Math.round(sum / count);
      }
    }
  }
  return { data: out, width: outW, height: outH };
}

// The centre square, with Python's floor division for the offsets.
export function centreSquare(width, height) {
  const side = Math.min(width, height);
  return { left: Math.floor((width - side) / 2), top: Math.floor((height - side) / 2), side };
}

export function crop(rgb, width, { left, top, side }) {
  const out = new Uint8Array(side * side * 3);
  for (let y = 0; y < side; y++) {
    const start = ((top + y) * width + left) * 3;
    out.set(rgb.subarray(start, start + side * 3), y * side * 3);
  }
  return out;
}

// Pillow's coefficients for one axis: for each output index, the first input index, the count,
// and the fixed-point weights of the triangle filter widened by the reduction factor.
export function bilinearCoefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the bilinear filter's support is 1
  const inverse = 1 / filterScale; // Pillow multiplies by this rather than dividing
  const bounds = [];
  const weights = [];
  for (let xx = 0; xx < outSize; xx++) {
    const centre = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(centre - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(centre + support + 0.5), inSize) - xmin;
    const raw = [];
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const w = Math.max(1 - Math.abs((x + xmin - centre + 0.5) * inverse), 0);
      raw.push(w);
      total += w;
    }
    weights.push(raw.map((w) => Math.trunc(0.5 + (total !== 0 ? w / total : w) * ONE)));
    bounds.push([xmin, xmax]);
  }
  return { bounds, weights };
}

function clip8(sum) {
  if (sum <= 0) return 0;
  return Math.min(Math.floor(sum / ONE), 255);
}

// Pillow's Image.resize((size, size), BILINEAR) of a square RGB image: a horizontal pass, then
// a vertical one, each rounding to uint8 as Pillow does. Same input bytes, same output bytes.
export function resizeBilinear(rgb, side, size) {
  if (side === size) return rgb.slice();
  const { bounds, weights } = bilinearCoefficients(side, size);
  const first = bounds[0][0];
  const last = bounds[size - 1][0] + bounds[size - 1][1];
  const rows = last - first;
  const temp = new Uint8Array(rows * size * 3);
  for (let y = 0; y < rows; y++) {
    for (let xx = 0; xx < size; xx++) {
      const [xmin, count] = bounds[xx];
      const k = weights[xx];
      for (let c = 0; c < 3; c++) {
        let sum = HALF;
        for (let x = 0; x < count; x++) sum += rgb[((y + first) * side + x + xmin) * 3 + c] * k[x];
        temp[(y * size + xx) * 3 + c] = clip8(sum);
      }
    }
  }
  const out = new Uint8Array(size * size * 3);
  for (let yy = 0; yy < size; yy++) {
    const [ymin, count] = bounds[yy];
    const k = weights[yy];
    for (let xx = 0; xx < size; xx++) {
      for (let c = 0; c < 3; c++) {
        let sum = HALF;
        for (let y = 0; y < count; y++) sum += temp[((y + ymin - first) * size + xx) * 3 + c] * k[y];
        out[(yy * size + xx) * 3 + c] = clip8(sum);
      }
    }
  }
  return out;
}

// Decoded RGB (already oriented) to the model input; `jpeg` applies the draft reduction.
export function toModelInput(rgb, width, height, size, jpeg) {
  const reduced = jpeg ? boxReduce(rgb, width, height, draftScale(width, height, size)) : { data: rgb, width, height };
  const square = centreSquare(reduced.width, reduced.height);
  return resizeBilinear(crop(reduced.data, reduced.width, square), square.side, size);
}

export function isJpeg(bytes) {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

// Start-of-frame markers (0xC0-0xCF but DHT, JPG and DAC) carry the coded size.
const NOT_SOF = new Set([0xc4, 0xc8, 0xcc]);

// A JPEG's stored width and height (before EXIF orientation) from its frame header, or null.
export function jpegSize(bytes) {
  let at = 2;
  while (at + 9 < bytes.length) {
    if (bytes[at] !== 0xff) return null;
    const marker = bytes[at + 1];
    if (marker === 0xff) {
      at += 1; // fill byte
      continue;
    }
    if (marker >= 0xc0 && marker <= 0xcf && !NOT_SOF.has(marker)) {
      return { height: (bytes[at + 5] << 8) | bytes[at + 6], width: (bytes[at + 7] << 8) | bytes[at + 8] };
    }
    at += 2 + ((bytes[at + 2] << 8) | bytes[at + 3]);
  }
  return null;
}
