using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using Sd.Loaders.Pictures;
using Sd.Loaders.Png;
using Sd.Loaders.Webp;

namespace Sd.Loaders.Tests;

/// <summary>
/// What the WebP reader refuses (by name, naming the file), the size check before decoding, A1111's EXIF
/// UserComment as "parameters", EXIF orientation, and PictureFile reading WebP by its bytes.
/// </summary>
public sealed class WebpFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] Lossy() => ReferenceFiles.Files(ReferenceFiles.Webp, "webp")[0]; // 37x21, a simple VP8 file

    private static byte[] Lossless() => Case("lossless");

    [Fact]
    public void Damaged_and_unsupported_files_are_refused_by_name()
    {
        byte[] lossy = Lossy();
        AssertRefused(lossy[..^40], "cut.webp", $"truncated: the RIFF size says {lossy.Length} bytes, the file has {lossy.Length - 40}");
        AssertRefused(Shortened(lossy, 200), "short.webp", "truncated: the VP8 coefficients end inside macroblock row 0");
        AssertRefused(Shortened(Lossless(), 1000), "short-lossless.webp", "VP8L: truncated: the lossless image data ends early");

        byte[] interFrame = Lossy();
        interFrame[20] |= 1; // the frame tag's key-frame bit: 1 is an inter frame
        AssertRefused(interFrame, "inter.webp", "the VP8 frame is not a key frame");

        byte[] junk = Lossy();
        "JUNK"u8.CopyTo(junk.AsSpan(12));
        AssertRefused(junk, "junk.webp", "not a WebP image: the first chunk is 'JUNK', not VP8, VP8L or VP8X");

        byte[] image = ImageChunk(Lossy());
        AssertRefused(Extended(38, 21, 0, image), "canvas.webp", "the image is 37x21 but the VP8X canvas is 38x21");
        byte[] alpha = Chunk("ALPH", [0, .. new byte[37 * 21]]);
        AssertRefused(Extended(37, 21, 0x10, image, alpha), "late-alpha.webp", "the ALPH chunk comes after the image chunk; it must come before");
        AssertRefused(Extended(37, 21, 0x10, ImageChunk(Lossless()), Chunk("XMP ", []), alpha), "lossless-alpha.webp",
            "the ALPH chunk comes after the image chunk; it must come before");
        AssertRefused(Extended(37, 21, 0x10, alpha, ImageChunk(Lossless())), "double-alpha.webp",
            "an ALPH chunk beside a lossless (VP8L) image, which carries its own alpha");
        AssertRefused(Extended(37, 21, 0, image, image), "two.webp", "more than one image chunk in a still WebP");
        AssertRefused(Extended(37, 21, 0x10, Chunk("ALPH", [0x40, 0]), image), "alpha-bits.webp",
            "ALPH chunk header 0x40: unknown compression, preprocessing or reserved bits");
    }

    /// <summary>An animation is validated frame by frame as libwebp's demuxer validates it, though only the first
    /// frame is decoded.</summary>
    [Fact]
    public void Damaged_animations_are_refused_by_name()
    {
        byte[] image = ImageChunk(Lossy()); // 37x21
        byte[] anim = Chunk("ANIM", new byte[6]);
        AssertRefused(Extended(37, 21, 0x02, anim, Frame(0, 0, image), Frame(2, 0, image)), "outside.webp",
            "ANMF frame 2 (37x21 at 2,0) does not fit the 37x21 canvas");
        AssertRefused(Extended(37, 21, 0x02, Frame(0, 0, image), anim), "early.webp", "an ANMF frame before the ANIM chunk");
        AssertRefused(Extended(37, 21, 0x02, anim, image), "loose.webp", "a VP8 chunk outside the frames of an animated WebP");
        AssertRefused(Extended(37, 21, 0x02, anim), "empty.webp", "the animated WebP has no frames");
        AssertRefused(Extended(37, 21, 0x02, anim, Frame(0, 0, Chunk("ALPH", [0, 0]))), "alpha-only.webp",
            "ANMF frame 1 has an ALPH chunk and no image chunk");
        AssertRefused(Extended(37, 21, 0x02, anim, Chunk("ANMF", new byte[10])), "short-frame.webp",
            "ANMF frame 1 of 10 bytes; its header needs 16");
        byte[] cut = Frame(0, 0, image);
        BinaryPrimitives.WriteInt32LittleEndian(cut.AsSpan(4), 16 + 8); // the frame ends inside its image chunk
        AssertRefused(Extended(37, 21, 0x02, anim, cut), "cut-frame.webp",
            $"truncated: chunk 'VP8 ' at byte 68 has {image.Length - 8} bytes but 0 are left in the ANMF frame 1");
        AssertRefused(Extended(37, 21, 0, anim, image), "flagless.webp", "ANIM chunk in a WebP without the animation flag");
    }

    /// <summary>A frame without image chunks is skipped, as libwebp skips it: the next one is the picture.</summary>
    [Fact]
    public void An_animation_shows_its_first_frame_with_an_image()
    {
        byte[] lossy = Lossy();
        byte[] file = Extended(37, 21, 0x02, Chunk("ANIM", new byte[6]), Frame(0, 0, Chunk("XMP ", [])), Frame(0, 0, ImageChunk(lossy)));
        Assert.Equal(WebpFile.Read(new MemoryStream(lossy), "still.webp").Pixels, WebpFile.Read(new MemoryStream(file), "anim.webp").Pixels);
    }

    [Fact]
    public void An_extended_file_reads_like_the_simple_one_and_a_raw_alpha_plane_is_its_alpha()
    {
        byte[] image = ImageChunk(Lossy());
        PngImage simple = WebpFile.Read(new MemoryStream(Lossy()), "simple.webp");
        PngImage extended = WebpFile.Read(new MemoryStream(Extended(37, 21, 0, Chunk("ICCP", [1, 2, 3]), image)), "x.webp");
        Assert.Equal(simple.Pixels, extended.Pixels);
        Assert.Equal(3, extended.Channels);

        var plane = new byte[37 * 21];
        for (int i = 0; i < plane.Length; i++)
            plane[i] = (byte)(i * 7);
        PngImage withAlpha = WebpFile.Read(new MemoryStream(Extended(37, 21, 0x10, Chunk("ALPH", [0, .. plane]), image)), "a.webp");
        Assert.Equal(4, withAlpha.Channels);
        for (int p = 0; p < plane.Length; p++)
        {
            Assert.Equal(simple.Pixels.AsSpan(3 * p, 3), withAlpha.Pixels.AsSpan(4 * p, 3));
            Assert.Equal(plane[p], withAlpha.Pixels[4 * p + 3]);
        }
    }

    [Fact]
    public void A_required_size_is_checked_from_the_headers()
    {
        string path = _dir.Write("photo.webp", Lossy());
        var e = Assert.Throws<InvalidFileException>(() => WebpFile.Read(path, 64, 64));
        Assert.Equal($"{path}: the picture is 37x21; 64x64 is needed", e.Message);
        Assert.Equal((37, 21), (WebpFile.Read(path, 37, 21).Width, WebpFile.Read(path, 37, 21).Height));
    }

    [Theory]
    [InlineData("UNICODE\0", "a cat, ünïcode 猫\nSteps: 20")]
    [InlineData("ASCII\0\0\0", "a cat\nSteps: 20")]
    public void A1111s_exif_user_comment_is_the_parameters_text(string prefix, string parameters)
    {
        Encoding encoding = prefix.StartsWith("UNICODE", StringComparison.Ordinal) ? Encoding.BigEndianUnicode : Encoding.ASCII;
        byte[] comment = [.. Encoding.ASCII.GetBytes(prefix), .. encoding.GetBytes(parameters)];
        foreach (bool little in new[] { false, true })
        {
            // Pillow writes the EXIF chunk as bare TIFF data; some writers keep JPEG's "Exif\0\0" in front.
            byte[] tiff = ExifTiff.WithUserComment(comment, little);
            foreach (byte[] exif in new[] { tiff, [.. "Exif\0\0"u8, .. tiff] })
            {
                byte[] file = Extended(37, 21, 0x08, ImageChunk(Lossy()), Chunk("EXIF", exif));
                Assert.Equal(parameters, WebpFile.Read(new MemoryStream(file), "exif.webp").Text["parameters"]);
            }
        }
        Assert.Empty(WebpFile.Read(new MemoryStream(Lossy()), "plain.webp").Text);
    }

    /// <summary>Each EXIF orientation turns the picture as Pillow's ImageOps.exif_transpose does; a required size is
    /// the upright one; a plain read keeps the picture as stored.</summary>
    [Theory]
    [InlineData(1), InlineData(2), InlineData(3), InlineData(4), InlineData(5), InlineData(6), InlineData(7), InlineData(8)]
    public void Reading_upright_applies_the_exif_orientation_as_pillow_does(int orientation)
    {
        using JsonDocument reference = ReferenceFiles.Open(ReferenceFiles.Webp);
        JsonElement c = reference.RootElement.GetProperty("oriented")[orientation - 1];
        Assert.Equal(orientation, c.GetProperty("orientation").GetInt32());
        string path = _dir.Write($"turned{orientation}.webp", Convert.FromBase64String(c.GetProperty("webp").GetString()!));
        int width = c.GetProperty("width").GetInt32(), height = c.GetProperty("height").GetInt32();
        PngImage upright = PictureFile.ReadUpright(path, width, height);
        Assert.Equal((width, height), (upright.Width, upright.Height));
        Assert.Equal(Convert.FromBase64String(c.GetProperty("pixels").GetString()!), upright.Pixels);
        Assert.Equal((13, 7), (PictureFile.Read(path).Width, PictureFile.Read(path).Height));
        if (orientation >= 5)
        {
            var e = Assert.Throws<InvalidFileException>(() => PictureFile.ReadUpright(path, 13, 7));
            Assert.Equal($"{path}: the picture is 7x13 upright; 13x7 is needed", e.Message);
        }
    }

    [Fact]
    public void Picture_file_reads_webp_by_its_bytes()
    {
        string path = _dir.Write("really-a-webp.png", Lossless());
        Assert.Equal(WebpFile.Read(path).Pixels, PictureFile.Read(path).Pixels);
        var e = Assert.Throws<InvalidFileException>(() => PictureFile.Read(path, 8, 8));
        Assert.Equal($"{path}: the picture is 37x21; 8x8 is needed", e.Message);
    }

    private static byte[] Case(string name) =>
        Convert.FromBase64String(ReferenceFiles.Case(ReferenceFiles.Webp, name).GetProperty("webp").GetString()!);

    /// <summary>A simple file's image chunk (header and payload).</summary>
    private static byte[] ImageChunk(byte[] simple) => simple[12..];

    /// <summary>A simple file with <paramref name="cut"/> bytes taken off its image chunk, the sizes made to agree.</summary>
    private static byte[] Shortened(byte[] simple, int cut) =>
        Riff(Chunk(Encoding.ASCII.GetString(simple, 12, 4), simple[20..(20 + BinaryPrimitives.ReadInt32LittleEndian(simple.AsSpan(16)) - cut)]));

    /// <summary>A VP8X file of the canvas size and flags with the chunks given.</summary>
    private static byte[] Extended(int width, int height, byte flags, params byte[][] chunks)
    {
        var header = new byte[10];
        header[0] = flags;
        BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(4), width - 1);
        header[7] = (byte)(height - 1);
        header[8] = (byte)((height - 1) >> 8);
        return Riff([.. Chunk("VP8X", header), .. chunks.SelectMany(c => c)]);
    }

    /// <summary>An ANMF chunk placing <paramref name="chunks"/> at (x, y) (even), 1x1 in its header (libwebp takes the
    /// image's own size).</summary>
    private static byte[] Frame(int x, int y, params byte[][] chunks)
    {
        var header = new byte[16];
        header[0] = (byte)(x / 2);
        header[3] = (byte)(y / 2);
        return Chunk("ANMF", [.. header, .. chunks.SelectMany(c => c)]);
    }

    private static byte[] Chunk(string tag, byte[] payload)
    {
        var size = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(size, payload.Length);
        return [.. Encoding.ASCII.GetBytes(tag), .. size, .. payload, .. (payload.Length % 2 == 1 ? new byte[1] : [])];
    }

    private static byte[] Riff(byte[] chunks)
    {
        var size = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(size, 4 + chunks.Length);
        return [.. "RIFF"u8, .. size, .. "WEBP"u8, .. chunks];
    }

    private void AssertRefused(byte[] bytes, string name, string problem)
    {
        string path = _dir.Write(name, bytes);
        var e = Assert.Throws<InvalidFileException>(() => WebpFile.Read(path));
        Assert.Equal($"{path}: {problem}", e.Message);
    }
}
