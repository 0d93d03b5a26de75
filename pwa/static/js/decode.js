// A photo's pixels from the browser, as edge/preprocess.py decodes it with Pillow: EXIF
// orientation applied, no colour management (Pillow ignores embedded ICC profiles), transparency
// over white, and a large JPEG decoded at the reduced scale Pillow's draft mode picks.
//
// The draft decode: WebCodecs' ImageDecoder given the draft's size decodes in the DCT at that
// scale, and in Chromium the result equals Pillow's byte for byte (both are libjpeg-turbo;
// tests/test_pwa_ondevice_parity.py). Elsewhere preprocess.js's block average stands in.
//
// Before any of that, the photo's header is checked against the server's limits
// (photo-limits.js): a photo the server would refuse is refused here, before it is decoded.

import { photoHeader, photoRefusal } from "./photo-limits.js";
import { draftScale, isJpeg, jpegSize, rgbaToRgb, toModelInput } from "./preprocess.js";

// A photo refused before decoding; its message is the server's.
export class PhotoRefusedError extends Error {}

function readPixels(source, width, height) {
  const canvas = new OffscreenCanvas(width, height);
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, width, height);
  context.drawImage(source, 0, 0);
  return { rgb: rgbaToRgb(context.getImageData(0, 0, width, height).data), width, height };
}

// Only where decoded frames carry the EXIF rotation: drawing one then applies it.
function canDecodeScaled() {
  return typeof ImageDecoder === "function" && typeof VideoFrame === "function" && "rotation" in VideoFrame.prototype;
}

// The JPEG decoded at the draft's scale and oriented, or null (no draft, or not this browser).
async function draftDecode(bytes, size) {
  const stored = jpegSize(bytes);
  if (!stored || !canDecodeScaled()) return null;
  const scale = draftScale(stored.width, stored.height, size);
  if (scale === 1) return null;
  // libjpeg rounds a scaled side up; asking for exactly that size makes the browser pick the same scale.
  const width = Math.ceil(stored.width / scale);
  const height = Math.ceil(stored.height / scale);
  let decoder;
  try {
    decoder = new ImageDecoder({ data: bytes, type: "image/jpeg", desiredWidth: width, desiredHeight: height,
      colorSpaceConversion: "none" });
    const { image } = await decoder.decode();
    try {
      if (image.codedWidth !== width || image.codedHeight !== height) return null; // another scale: not Pillow's
      return readPixels(image, image.displayWidth, image.displayHeight);
    } finally {
      image.close();
    }
  } catch {
    return null;
  } finally {
    decoder?.close();
  }
}

async function fullDecode(blob) {
  const bitmap = await createImageBitmap(blob, {
    imageOrientation: "from-image",
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  try {
    return readPixels(bitmap, bitmap.width, bitmap.height);
  } finally {
    bitmap.close();
  }
}

// The model input for a photo. Throws PhotoRefusedError for a photo outside `limits` (the page
// config's photoLimits), the browser's DOMException when it is not a decodable image.
export async function pixelsFromBlob(blob, size, limits) {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  const refusal = photoRefusal(photoHeader(bytes), size, limits);
  if (refusal) throw new PhotoRefusedError(refusal);
  const jpeg = isJpeg(bytes);
  const drafted = jpeg ? await draftDecode(bytes, size) : null;
  if (drafted) return toModelInput(drafted.rgb, drafted.width, drafted.height, size, false);
  const { rgb, width, height } = await fullDecode(blob);
  return toModelInput(rgb, width, height, size, jpeg);
}
