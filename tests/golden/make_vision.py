#!/usr/bin/env python3
"""Writes the image files of tests/data/images/ and tests/golden/vision.txt: what PIL (the loader
of torchvision's ImageFolder) decodes from them, and torchvision 0.14's functional transforms
and make_grid on fixed images, for include/ft/vision/.

Records: <file>.pixels (the decoded image, CHW, i64; converted to RGB as ImageFolder's loader
does: <file>.rgb); <case>.in (the transform's input), <case>.out. uint8 tensors are written as
i64. 16-bit PNG files are written by hand (PIL cannot write 16-bit RGB); their expected 8-bit
pixels are round(v · 255 / 65535), the rounding libpng's png_set_scale_16 does.

Run from the repository root with Debian's python3 (torch 1.13, python3-torchvision 0.14,
python3-pil):
    /usr/bin/python3 tests/golden/make_vision.py
The output is committed; CI does not run this script. Record format: tests/golden/golden.hpp.
"""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import torch
import torchvision.transforms.functional as F
import torchvision.utils as U
from PIL import Image

sys.dont_write_bytecode = True  # no __pycache__ next to the golden files
from golden_io import write  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "vision.txt")
IMAGES = os.path.join(HERE, "..", "data", "images")
rng = np.random.default_rng(20261206)


ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def png_file(path, array, bits, color_type, interlaced=False):
    """A PNG of an HxW or HxWxC array (8 or 16 bits; gray: color type 0, RGB: 2), written by hand:
    PIL writes neither 16-bit RGB nor Adam7-interlaced files. Each scanline has filter 0."""
    h, w = array.shape[:2]
    dtype = ">u2" if bits == 16 else "u1"

    def scanlines(a):
        return b"".join(b"\0" + a[y].astype(dtype).tobytes() for y in range(a.shape[0]))

    if interlaced:  # the seven passes' sub-images, an empty one left out
        raw = b"".join(scanlines(array[y0::dy, x0::dx]) for x0, y0, dx, dy in ADAM7
                       if x0 < w and y0 < h)
    else:
        raw = scanlines(array)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, bits, color_type, 0, 0, 1 if interlaced else 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def bmp_file(path, width, height, bits, rows, palette=(), compression=0, masks=(), header=40, top_down=False):
    """A BMP written by hand (PIL writes only 1-, 8- and 24-bit files with the 40-byte header):
    rows are each row's pixel bytes, top row first, unpadded; palette (r, g, b) entries."""
    stride = (width * bits + 31) // 32 * 4
    data = b"".join(r + b"\0" * (stride - len(r)) for r in (rows if top_down else rows[::-1]))
    extra = b""
    if header == 12:  # OS/2 1.x: 16-bit sizes, 3-byte palette entries
        info = struct.pack("<IHHHH", 12, width, height, 1, bits)
        pal = b"".join(bytes((b, g, r)) for r, g, b in palette)
    else:
        info = struct.pack("<IiiHHIIiiII", header, width, -height if top_down else height, 1, bits, compression,
                           len(data), 2835, 2835, len(palette), 0)
        if header > 40:  # the masks inside the header, then the V4/V5 fields left zero
            info += struct.pack("<4I", *(list(masks) + [0] * (4 - len(masks))))
            info += b"\0" * (header - len(info))
        else:
            extra = b"".join(struct.pack("<I", m) for m in masks)
        pal = b"".join(bytes((b, g, r, 0)) for r, g, b in palette)
    offset = 14 + len(info) + len(extra) + len(pal)
    with open(path, "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + info + extra + pal + data)


def rle_stream(index, bits):
    """BI_RLE8 (bits 8) or BI_RLE4 (bits 4) data of an HxW index array, bottom row first: runs of
    an index as encoded pairs (RLE4: a pair of alternating indices too), other stretches of at
    least 4 as literal (absolute) runs of an even length (PIL 9.4 drops the last index of an odd
    RLE4 literal run), each row closed by an end of line, the bitmap by an end of bitmap."""
    out = bytearray()
    for row in index[::-1]:
        row = [int(v) for v in row]
        x = 0
        while x < len(row):
            n = 1  # an encoded run: row[x], row[x + 1], row[x], ... (RLE8: one value)
            while (x + n < len(row) and n < 255 and
                   row[x + n] == (row[x] if bits == 8 or n % 2 == 0 else row[x + 1])):
                n += 1
            if n >= 3 or x + n == len(row) or len(row) - x < 4:
                pair = row[x] if bits == 8 else row[x] << 4 | (row[x + 1] if n > 1 else 0)
                out += bytes((n, pair))
                x += n
                continue
            m = 4  # a literal run, even, up to the next encoded run of 3
            while x + m + 2 <= len(row) and m < 254 and not (row[x + m] == row[x + m + 1] == row[min(x + m + 2, len(row) - 1)]):
                m += 2
            lit = row[x:x + m]
            data = bytes(lit) if bits == 8 else bytes(lit[k] << 4 | lit[k + 1] for k in range(0, m, 2))
            out += bytes((0, m)) + data + (b"\0" if len(data) % 2 else b"")
            x += m
        out += b"\0\0"
    return bytes(out[:-2] + b"\0\1")


def bmp_rle_file(path, width, height, bits, stream, palette):
    """A run-length BMP (40-byte header; compression 1 = RLE8, 2 = RLE4) of `stream`."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 1 if bits == 8 else 2, len(stream), 2835, 2835,
                       len(palette), 0)
    pal = b"".join(bytes((b, g, r, 0)) for r, g, b in palette)
    offset = 14 + len(info) + len(pal)
    with open(path, "wb") as f:
        f.write(b"BM" + struct.pack("<IHHI", offset + len(stream), 0, 0, offset) + info + pal + stream)


def png16(path, array, color_type):
    """A 16-bit PNG (gray: color type 0, RGB: 2) of an HxW or HxWx3 uint16 array."""
    png_file(path, array, 16, color_type)


def chw(a):
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)).astype(np.int64))


def main():
    os.makedirs(IMAGES, exist_ok=True)
    h, w = 13, 17
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (h, w), dtype=np.uint8)
    with open(OUT, "w") as f:
        f.write("# written by tests/golden/make_vision.py (PIL, torchvision %s)\n" % __import__("torchvision").__version__)

        def files(name, save, unchanged=None):
            path = os.path.join(IMAGES, name)
            save(path)
            im = Image.open(path)
            im.load()
            if unchanged is not None:
                write(f, name + ".pixels", unchanged)
            write(f, name + ".rgb", chw(im.convert("RGB")))
            write(f, name + ".gray", chw(im.convert("L")))

        files("rgb.png", lambda p: Image.fromarray(rgb).save(p), chw(rgb))
        files("rgba.png", lambda p: Image.fromarray(rgba, "RGBA").save(p), chw(rgba))
        files("gray.png", lambda p: Image.fromarray(gray).save(p), chw(gray))
        files("gray_alpha.png", lambda p: Image.fromarray(rgba[:, :, :2], "LA").save(p), chw(rgba[:, :, :2]))
        bits = (gray > 127)
        files("bilevel.png", lambda p: Image.fromarray(bits).save(p), chw(bits.astype(np.uint8) * 255))
        pal = Image.fromarray(rgb).quantize(16)
        pal.info["transparency"] = 3
        files("palette.png", lambda p: pal.save(p, transparency=3))
        g16 = rng.integers(0, 65536, (h, w), dtype=np.uint16)
        png16(os.path.join(IMAGES, "gray16.png"), g16, 0)
        write(f, "gray16.png.pixels", chw(np.round(g16.astype(np.float64) * 255 / 65535).astype(np.uint8)))
        c16 = rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)
        png16(os.path.join(IMAGES, "rgb16.png"), c16, 2)
        write(f, "rgb16.png.pixels", chw(np.round(c16.astype(np.float64) * 255 / 65535).astype(np.uint8)))
        # Adam7-interlaced files (libpng's png_set_interlace_handling), checked against PIL's reading
        files("rgb_interlaced.png", lambda p: png_file(p, rgb, 8, 2, interlaced=True), chw(rgb))
        png_file(os.path.join(IMAGES, "gray16_interlaced.png"), g16, 16, 0, interlaced=True)
        write(f, "gray16_interlaced.png.pixels", chw(np.round(g16.astype(np.float64) * 255 / 65535).astype(np.uint8)))
        # BMP: PIL's writer (24-bit, an 8-bit gray palette, an 8-bit colour palette, 1-bit) and by hand
        # (32-bit bit fields with alpha, top-down, V5 header; 16-bit 5-6-5 bit fields and 5-5-5;
        # 4-bit palette; the OS/2 1.x header)
        files("rgb.bmp", lambda p: Image.fromarray(rgb).save(p), chw(rgb))
        files("gray.bmp", lambda p: Image.fromarray(gray).save(p), chw(gray))
        files("palette.bmp", lambda p: pal.save(p), chw(pal.convert("RGB")))
        files("bilevel.bmp", lambda p: Image.fromarray(bits).save(p), chw(bits.astype(np.uint8) * 255))
        bgra = rgba[:, :, [2, 1, 0, 3]]
        files("rgba_v5_topdown.bmp",
              lambda p: bmp_file(p, w, h, 32, [bgra[y].tobytes() for y in range(h)], compression=3,
                                 masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000), header=124, top_down=True), chw(rgba))
        r16, g16_, b16 = (rgb[:, :, k].astype(np.uint16) for k in range(3))
        px565 = (r16 >> 3) << 11 | (g16_ >> 2) << 5 | b16 >> 3
        files("rgb565.bmp", lambda p: bmp_file(p, w, h, 16, [px565[y].astype("<u2").tobytes() for y in range(h)],
                                               compression=3, masks=(0xF800, 0x7E0, 0x1F)))
        px555 = (r16 >> 3) << 10 | (g16_ >> 3) << 5 | b16 >> 3
        files("rgb555.bmp", lambda p: bmp_file(p, w, h, 16, [px555[y].astype("<u2").tobytes() for y in range(h)]))
        index = np.asarray(pal)
        colours = [tuple(pal.getpalette()[3 * k:3 * k + 3]) for k in range(16)]
        nibbles = [bytes(int(index[y, x]) << 4 | (int(index[y, x + 1]) if x + 1 < w else 0) for x in range(0, w, 2))
                   for y in range(h)]
        files("palette4.bmp", lambda p: bmp_file(p, w, h, 4, nibbles, palette=colours), chw(pal.convert("RGB")))
        files("os2_palette8.bmp",
              lambda p: bmp_file(p, w, h, 8, [index[y].astype(np.uint8).tobytes() for y in range(h)],
                                 palette=colours + [(0, 0, 0)] * 240, header=12), chw(pal.convert("RGB")))
        # WebP (libwebp, as PIL): lossless RGB and RGBA (exact: transparent pixels keep their colour), lossy
        files("rgb_lossless.webp", lambda p: Image.fromarray(rgb).save(p, lossless=True), chw(rgb))
        files("rgba_lossless.webp", lambda p: Image.fromarray(rgba, "RGBA").save(p, lossless=True, exact=True), chw(rgba))
        files("rgb_lossy.webp", lambda p: Image.fromarray(rgb).save(p, quality=80))
        frames = [Image.fromarray(rgb), Image.fromarray(rgb[::-1].copy())]  # two frames: an error for ft
        frames[0].save(os.path.join(IMAGES, "animated.webp"), save_all=True, append_images=frames[1:], lossless=True)
        # TIFF (libtiff, as PIL): uncompressed, LZW, Deflate, Group 4, JPEG; gray + alpha, a palette;
        # tiles and separate planes made by libtiff's tiffcp (Debian libtiff-tools)
        files("rgb.tif", lambda p: Image.fromarray(rgb).save(p), chw(rgb))
        files("rgba_lzw.tif", lambda p: Image.fromarray(rgba, "RGBA").save(p, compression="tiff_lzw"), chw(rgba))
        files("gray_deflate.tif", lambda p: Image.fromarray(gray).save(p, compression="tiff_adobe_deflate"), chw(gray))
        files("gray_alpha.tif", lambda p: Image.fromarray(rgba[:, :, :2], "LA").save(p), chw(rgba[:, :, :2]))
        files("bilevel_g4.tif", lambda p: Image.fromarray(bits).save(p, compression="group4"),
              chw(bits.astype(np.uint8) * 255))
        files("palette.tif", lambda p: pal.save(p), chw(pal.convert("RGB")))
        files("rgb_jpeg.tif", lambda p: Image.fromarray(rgb).save(p, compression="jpeg", quality=90))
        files("rgb_tiled.tif", lambda p: subprocess.run(["tiffcp", "-t", "-w", "16", "-l", "16",
                                                         os.path.join(IMAGES, "rgb.tif"), p], check=True), chw(rgb))
        files("rgb_planar.tif", lambda p: subprocess.run(["tiffcp", "-p", "separate", os.path.join(IMAGES, "rgb.tif"),
                                                          p], check=True), chw(rgb))
        tiffcp = lambda args, src: lambda p: subprocess.run(["tiffcp", *args, os.path.join(IMAGES, src), p], check=True)
        files("rgba_tiled_planar.tif", tiffcp(["-t", "-w", "16", "-l", "16", "-p", "separate"], "rgba_lzw.tif"), chw(rgba))
        files("rgba_planar.tif", tiffcp(["-p", "separate", "-r", "5", "-c", "lzw"], "rgba_lzw.tif"), chw(rgba))
        files("cmyk.tif", lambda p: Image.fromarray(rgba, "RGBA").convert("CMYK").save(p))
        files("bilevel_tiled.tif", tiffcp(["-t", "-w", "16", "-l", "16"], "bilevel_g4.tif"),  # libtiff's RGBA path
              chw(bits.astype(np.uint8) * 255))
        # 16 bits, rounded to 8 bits as the PNG reader does
        Image.fromarray(g16).save(os.path.join(IMAGES, "gray16.tif"))
        write(f, "gray16.tif.pixels", chw(np.round(g16.astype(np.float64) * 255 / 65535).astype(np.uint8)))
        files("rgb.jpg", lambda p: Image.fromarray(rgb).save(p, quality=90))
        files("gray.jpg", lambda p: Image.fromarray(gray).save(p, quality=90))
        files("progressive.jpg", lambda p: Image.fromarray(rgb).save(p, quality=80, progressive=True))
        files("cmyk.jpg", lambda p: Image.fromarray(rgba, "RGBA").convert("CMYK").save(p, quality=95))

        # transforms on a fixed image
        img = torch.from_numpy(rng.integers(0, 256, (3, 23, 31), dtype=np.uint8))
        imgf = img.float() / 255
        write(f, "img", img.long())
        write(f, "imgf", imgf)
        cases = {
            "resize_down": F.resize(img, [11, 15], antialias=True),
            "resize_down_float": F.resize(imgf, [11, 15], antialias=True),
            "resize_shorter": F.resize(img, [16], antialias=True),
            "resize_max_size": F.resize(img, [16], antialias=True, max_size=20),
            "resize_up": F.resize(img, [40, 50], antialias=True),
            "resize_mixed": F.resize(imgf, [46, 12], antialias=True),
            "resize_down_plain": F.resize(img, [11, 15], antialias=False),
            "resize_down_plain_float": F.resize(imgf, [11, 15], antialias=False),
            "center_crop": F.center_crop(img, [10, 12]),
            "center_crop_odd": F.center_crop(img, [8, 9]),
            "center_crop_large": F.center_crop(img, [26, 33]),
            "crop_outside": F.crop(img, -2, 25, 6, 9),
            "resized_crop": F.resized_crop(img, 3, 4, 15, 20, [9, 7], antialias=True),
            "hflip": F.hflip(img),
            "to_tensor": F.convert_image_dtype(img, torch.float32),
            "normalize": F.normalize(imgf, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            "brightness": F.adjust_brightness(img, 1.7),
            "brightness_float": F.adjust_brightness(imgf, 0.6),
            "contrast": F.adjust_contrast(img, 0.5),
            "contrast_high": F.adjust_contrast(img, 1.8),
            "contrast_float": F.adjust_contrast(imgf, 1.3),
            "saturation": F.adjust_saturation(img, 0.3),
            "saturation_high": F.adjust_saturation(img, 1.7),
            "saturation_float": F.adjust_saturation(imgf, 1.4),
            "hue": F.adjust_hue(img, 0.2),
            "hue_neg": F.adjust_hue(img, -0.35),
            "hue_float": F.adjust_hue(imgf, 0.1),
            "hue_float_half": F.adjust_hue(imgf, -0.5),
            "pad_reflect": F.pad(img, [2, 3, 4, 1], padding_mode="reflect"),
            "pad_edge": F.pad(img, [2, 3, 4, 1], padding_mode="edge"),
        }
        for name, out in cases.items():
            write(f, name, out.long() if out.dtype == torch.uint8 else out.float())
        # the uint8 resizes before rounding: PyTorch's float sums may land on the other side of
        # a .5 than another order of the same sums, so a tie may round either way
        unrounded = {
            "resize_down": F.resize(img.float(), [11, 15], antialias=True),
            "resize_shorter": F.resize(img.float(), [16], antialias=True),
            "resize_max_size": F.resize(img.float(), [16], antialias=True, max_size=20),
            "resize_up": F.resize(img.float(), [40, 50], antialias=True),
            "resize_down_plain": F.resize(img.float(), [11, 15], antialias=False),
            "resized_crop": F.resized_crop(img.float(), 3, 4, 15, 20, [9, 7], antialias=True),
        }
        for name, out in unrounded.items():
            write(f, name + ".unrounded", out)
        # the uint8 color adjustments before truncation: a value within float rounding of an
        # integer may truncate either way
        gray = F.rgb_to_grayscale(img).float()
        untruncated = {
            "saturation": (0.3 * img.float() + 0.7 * gray).clamp(0, 255),
            "saturation_high": (1.7 * img.float() + (1.0 - 1.7) * gray).clamp(0, 255),
            "hue": F.adjust_hue(img.float() / 255.0, 0.2) * 255.0,
            "hue_neg": F.adjust_hue(img.float() / 255.0, -0.35) * 255.0,
        }
        for name, out in untruncated.items():
            write(f, name + ".untruncated", out)

        # make_grid and save_image
        batch = torch.from_numpy(rng.random((5, 1, 4, 6)).astype(np.float32)) * 3 - 1
        write(f, "grid.in", batch)
        write(f, "grid.out", U.make_grid(batch, nrow=2, padding=1, pad_value=0.5, normalize=True))
        write(f, "grid_each.out", U.make_grid(batch, nrow=3, padding=2, normalize=True, scale_each=True))
        write(f, "grid_range.out", U.make_grid(batch, nrow=8, padding=0, normalize=True, value_range=(0, 1)))
        path = os.path.join(IMAGES, "..", "..", "..", "build_vision_grid.png")
        U.save_image(batch.clamp(0, 1), path, nrow=4)
        write(f, "save_image.out", chw(Image.open(path)))
        os.remove(path)

        # run-length BMPs (PIL reads them; no writer makes them): an index image of runs
        runs = np.repeat(rng.integers(0, 16, (h, 6)), rng.integers(1, 6, 6), axis=1)[:, :w]
        runs = np.concatenate([runs, rng.integers(0, 16, (h, max(0, w - runs.shape[1])))], axis=1)
        runs[2] = rng.integers(0, 16, w)   # a row of literals
        runs[5, ::2], runs[5, 1::2] = 3, 9  # an alternating row (one RLE4 run)
        colours16 = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(16)]
        grays = [(v, v, v) for v in range(0, 256, 17)]
        files("rle8.bmp", lambda p: bmp_rle_file(p, w, h, 8, rle_stream(runs, 8), colours16))
        files("rle8_gray.bmp", lambda p: bmp_rle_file(p, w, h, 8, rle_stream(runs, 8), grays))
        files("rle4.bmp", lambda p: bmp_rle_file(p, w, h, 4, rle_stream(runs, 4), colours16))

        # every frame of an animated WebP and of a multi-page TIFF, as PIL's seek reads them
        def frames_of(name, save):
            path = os.path.join(IMAGES, name)
            save(path)
            im = Image.open(path)
            write(f, name + ".frames", torch.tensor([im.n_frames]))
            for k in range(im.n_frames):
                im.seek(k)
                im.load()
                write(f, "%s.frame%d" % (name, k), chw(im))

        frames_of("animated.webp", lambda p: None)  # the two-frame lossless RGB file above
        moving = [rgba.copy() for _ in range(3)]
        moving[1][2:6, 3:9] = [255, 0, 0, 128]   # a half-transparent patch: blended onto the canvas
        moving[2][:, :4, 3] = 0                   # a transparent band
        frames_of("animated_alpha.webp", lambda p: Image.fromarray(moving[0], "RGBA").save(
            p, save_all=True, append_images=[Image.fromarray(m, "RGBA") for m in moving[1:]], lossless=True, exact=True,
            duration=40))
        frames_of("pages.tif", lambda p: Image.fromarray(rgb).save(
            p, save_all=True, append_images=[Image.fromarray(np.ascontiguousarray(rgba[:5, :7, 0])), Image.fromarray(rgba, "RGBA")],
            compression="tiff_lzw"))
    print("wrote", OUT, "and", IMAGES)


if __name__ == "__main__":
    main()
