using System.Buffers.Binary;
using System.Text;

namespace Sd.Loaders.Webp;

/// <summary>A chunk's payload: where it starts in the file and how long it is.</summary>
internal readonly record struct WebpChunk(int Start, int Length);

/// <summary>
/// The RIFF container of a WebP file: a simple file (one "VP8 " or "VP8L" chunk) or an extended one ("VP8X", then an
/// optional "ALPH" alpha chunk before the image chunk, and "EXIF"; other chunks such as ICC profiles and XMP are
/// skipped). Validated as libwebp's demuxer, which Pillow reads through, validates it: sizes inside the RIFF size and
/// the file, one image, alpha only beside a lossy image, the canvas the image's size. Animations are refused.
/// Reference: the WebP container specification; libwebp's dec/webp_dec.c and demux/demux.c.
/// </summary>
internal sealed class WebpContainer
{
    private const int AnimationFlag = 0x02, AlphaFlag = 0x10;

    private WebpContainer(WebpChunk image, bool lossless)
    {
        Image = image;
        Lossless = lossless;
    }

    /// <summary>The "VP8 " (lossy) or "VP8L" (lossless) chunk.</summary>
    public WebpChunk Image { get; }

    public bool Lossless { get; }

    /// <summary>The lossy image's "ALPH" chunk, when it has one.</summary>
    public WebpChunk? Alpha { get; private set; }

    public WebpChunk? Exif { get; private set; }

    public int Width { get; private set; }

    public int Height { get; private set; }

    /// <summary>Whether the picture is RGBA as libwebp reports it (the extended header's flag, a lossless image's
    /// own flag, or an alpha chunk); otherwise RGB.</summary>
    public bool HasAlpha { get; private set; }

    /// <summary>Whether the first bytes are a WebP file's: "RIFF", a size, "WEBP".</summary>
    public static bool HasSignature(ReadOnlySpan<byte> head) =>
        head.Length >= 12 && head.StartsWith("RIFF"u8) && head.Slice(8, 4).SequenceEqual("WEBP"u8);

    public static WebpContainer Parse(byte[] data, string name)
    {
        if (!HasSignature(data))
            throw new InvalidFileException(name, "not a WebP file: it does not start with RIFF ... WEBP");
        long riffEnd = 8 + (long)BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(4));
        if (riffEnd < 20)
            throw new InvalidFileException(name, $"RIFF size {riffEnd - 8} is too small to hold a chunk");
        if (riffEnd > data.Length)
            throw new InvalidFileException(name, $"truncated: the RIFF size says {riffEnd} bytes, the file has {data.Length}");
        int at = 12;
        (string tag, WebpChunk chunk) = NextChunk(data, ref at, (int)riffEnd, name);
        if (tag is "VP8 " or "VP8L")
        {
            var simple = new WebpContainer(chunk, tag == "VP8L");
            simple.ReadImageHeader(data, name);
            return simple;
        }
        if (tag != "VP8X")
            throw new InvalidFileException(name, $"not a WebP image: the first chunk is '{Printable(tag)}', not VP8, VP8L or VP8X");
        if (chunk.Length < 10)
            throw new InvalidFileException(name, $"VP8X chunk of {chunk.Length} bytes; it needs 10");
        int flags = data[chunk.Start];
        if ((flags & AnimationFlag) != 0)
            throw new InvalidFileException(name, "animated WebP is not read (only still pictures are)");
        int canvasWidth = 1 + ReadUInt24(data, chunk.Start + 4), canvasHeight = 1 + ReadUInt24(data, chunk.Start + 7);

        WebpChunk? alpha = null, exif = null;
        WebpContainer? extended = null;
        while (at < riffEnd)
        {
            (tag, chunk) = NextChunk(data, ref at, (int)riffEnd, name);
            switch (tag)
            {
                case "ALPH" when extended == null:
                    alpha ??= chunk;
                    break;
                case "ALPH" when alpha == null:
                    throw new InvalidFileException(name, "the ALPH chunk comes after the image chunk; it must come before");
                case "VP8 " or "VP8L" when extended == null:
                    extended = new WebpContainer(chunk, tag == "VP8L");
                    break;
                case "VP8 " or "VP8L":
                    throw new InvalidFileException(name, "more than one image chunk in a still WebP");
                case "ANIM" or "ANMF":
                    throw new InvalidFileException(name, $"{tag} chunk: animated WebP is not read (only still pictures are)");
                case "EXIF":
                    exif ??= chunk;
                    break;
            }
        }
        if (extended == null)
            throw new InvalidFileException(name, "the WebP file has no VP8 or VP8L image chunk");
        if (extended.Lossless && alpha != null)
            throw new InvalidFileException(name, "an ALPH chunk beside a lossless (VP8L) image, which carries its own alpha");
        extended.HasAlpha = (flags & AlphaFlag) != 0;
        extended.ReadImageHeader(data, name);
        if (extended.Width != canvasWidth || extended.Height != canvasHeight)
        {
            throw new InvalidFileException(name,
                $"the image is {extended.Width}x{extended.Height} but the VP8X canvas is {canvasWidth}x{canvasHeight}");
        }
        extended.Alpha = alpha;
        extended.HasAlpha |= alpha != null;
        extended.Exif = exif;
        return extended;
    }

    /// <summary>Reads the size (and a lossless image's alpha flag) from the image chunk's own header.</summary>
    private void ReadImageHeader(byte[] data, string name)
    {
        ReadOnlySpan<byte> image = data.AsSpan(Image.Start, Image.Length);
        if (Lossless)
        {
            if (image.Length < 5 || image[0] != 0x2f)
                throw new InvalidFileException(name, "bad VP8L signature");
            uint bits = BinaryPrimitives.ReadUInt32LittleEndian(image[1..]);
            if (bits >> 29 != 0)
                throw new InvalidFileException(name, $"unknown VP8L version {bits >> 29}");
            Width = (int)(bits & 0x3fff) + 1;
            Height = (int)((bits >> 14) & 0x3fff) + 1;
            HasAlpha = ((bits >> 28) & 1) != 0;
            return;
        }
        if (image.Length < 10)
            throw new InvalidFileException(name, "truncated VP8 frame header");
        Width = BinaryPrimitives.ReadUInt16LittleEndian(image[6..]) & 0x3fff;
        Height = BinaryPrimitives.ReadUInt16LittleEndian(image[8..]) & 0x3fff;
    }

    /// <summary>Reads the chunk header at <paramref name="at"/> and moves past the (even-padded) payload.</summary>
    private static (string Tag, WebpChunk Chunk) NextChunk(byte[] data, ref int at, int riffEnd, string name)
    {
        if (riffEnd - at < 8)
            throw new InvalidFileException(name, $"truncated chunk header at byte {at}");
        string tag = Encoding.Latin1.GetString(data, at, 4);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at + 4));
        if (size > riffEnd - at - 8)
        {
            throw new InvalidFileException(name,
                $"truncated: chunk '{Printable(tag)}' at byte {at} has {size} bytes but {riffEnd - at - 8} are left in the RIFF");
        }
        var chunk = new WebpChunk(at + 8, (int)size);
        at = (int)Math.Min(riffEnd, at + 8 + size + (size & 1));
        return (tag, chunk);
    }

    private static int ReadUInt24(byte[] data, int at) => data[at] | data[at + 1] << 8 | data[at + 2] << 16;

    private static string Printable(string tag) => string.Create(tag.Length, tag, static (span, t) =>
    {
        for (int i = 0; i < t.Length; i++)
            span[i] = t[i] is >= ' ' and <= '~' ? t[i] : '?';
    });
}
