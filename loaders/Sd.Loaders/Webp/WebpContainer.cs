using System.Buffers.Binary;
using System.Text;

namespace Sd.Loaders.Webp;

/// <summary>A chunk's payload: where it starts in the file and how long it is.</summary>
internal readonly record struct WebpChunk(int Start, int Length);

/// <summary>
/// The RIFF container of a WebP file: a simple file (one "VP8 " or "VP8L" chunk), an extended one ("VP8X", then an
/// optional "ALPH" alpha chunk before the image chunk, and "EXIF"; other chunks such as ICC profiles and XMP are
/// skipped), or an animation ("VP8X" with the animation flag, "ANIM", then "ANMF" frames, each an optional "ALPH" and
/// an image chunk placed on the canvas). Of an animation only the first frame is read, as Pillow's Image.open shows
/// it; every frame is still validated, as libwebp's demuxer (which Pillow reads through) validates them: sizes inside
/// the RIFF size, the file and the frame, one image per frame, alpha only before a lossy image, frames inside the
/// canvas. A still picture's image is the canvas's size.
/// Reference: the WebP container specification; libwebp's dec/webp_dec.c and demux/demux.c.
/// </summary>
internal sealed class WebpContainer
{
    private const int AnimationFlag = 0x02, AlphaFlag = 0x10, FrameHeaderBytes = 16;

    /// <summary>The first frame's "VP8 " (lossy) or "VP8L" (lossless) chunk.</summary>
    public WebpChunk Image { get; private set; }

    public bool Lossless { get; private set; }

    /// <summary>The first frame's "ALPH" chunk, when its lossy image has one.</summary>
    public WebpChunk? Alpha { get; private set; }

    public WebpChunk? Exif { get; private set; }

    /// <summary>The canvas: the picture's size.</summary>
    public int Width { get; private set; }

    public int Height { get; private set; }

    /// <summary>Where the first frame's image lies on the canvas, and its size (the image's own; the whole canvas
    /// for a still picture).</summary>
    public int FrameX { get; private set; }

    public int FrameY { get; private set; }

    public int FrameWidth { get; private set; }

    public int FrameHeight { get; private set; }

    /// <summary>Whether the picture is RGBA as libwebp's features report it (an animation: the extended header's flag;
    /// a still picture: a lossless image's own flag, or a lossy one's header flag or alpha chunk); otherwise RGB.</summary>
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
        var container = new WebpContainer();
        (string tag, WebpChunk chunk) = NextChunk(data, ref at, (int)riffEnd, name);
        if (tag is "VP8 " or "VP8L")
        {
            container.SetImage(data, chunk, tag == "VP8L", null, name);
            container.HasAlpha = container.Lossless && LosslessAlphaHint(data, chunk);
            container.Width = container.FrameWidth;
            container.Height = container.FrameHeight;
            return container;
        }
        if (tag != "VP8X")
            throw new InvalidFileException(name, $"not a WebP image: the first chunk is '{Printable(tag)}', not VP8, VP8L or VP8X");
        if (chunk.Length < 10)
            throw new InvalidFileException(name, $"VP8X chunk of {chunk.Length} bytes; it needs 10");
        int flags = data[chunk.Start];
        container.Width = 1 + ReadUInt24(data, chunk.Start + 4);
        container.Height = 1 + ReadUInt24(data, chunk.Start + 7);
        container.HasAlpha = (flags & AlphaFlag) != 0;
        if ((flags & AnimationFlag) != 0)
            container.ReadFrames(data, at, (int)riffEnd, name);
        else
            container.ReadStill(data, at, (int)riffEnd, name);
        return container;
    }

    private WebpContainer()
    {
    }

    /// <summary>An extended still picture's chunks after VP8X.</summary>
    private void ReadStill(byte[] data, int at, int riffEnd, string name)
    {
        WebpChunk? alpha = null;
        bool imageSeen = false;
        while (at < riffEnd)
        {
            (string tag, WebpChunk chunk) = NextChunk(data, ref at, riffEnd, name);
            switch (tag)
            {
                case "ALPH" when !imageSeen:
                    alpha ??= chunk;
                    break;
                case "ALPH" when alpha == null:
                    throw new InvalidFileException(name, "the ALPH chunk comes after the image chunk; it must come before");
                case "VP8 " or "VP8L" when !imageSeen:
                    if (tag == "VP8L" && alpha != null)
                        throw new InvalidFileException(name, "an ALPH chunk beside a lossless (VP8L) image, which carries its own alpha");
                    SetImage(data, chunk, tag == "VP8L", alpha, name);
                    imageSeen = true;
                    break;
                case "VP8 " or "VP8L":
                    throw new InvalidFileException(name, "more than one image chunk in a still WebP");
                case "ANIM" or "ANMF":
                    throw new InvalidFileException(name, $"{tag} chunk in a WebP without the animation flag");
                case "EXIF":
                    Exif ??= chunk;
                    break;
            }
        }
        if (!imageSeen)
            throw new InvalidFileException(name, "the WebP file has no VP8 or VP8L image chunk");
        if (FrameWidth != Width || FrameHeight != Height)
            throw new InvalidFileException(name, $"the image is {FrameWidth}x{FrameHeight} but the VP8X canvas is {Width}x{Height}");
        // libwebp's features: a lossless image's own flag replaces the header's; a lossy one adds its alpha chunk.
        HasAlpha = Lossless ? LosslessAlphaHint(data, Image) : HasAlpha || alpha != null;
    }

    /// <summary>An animation's chunks after VP8X: ANIM, then frames; the first frame is kept.</summary>
    private void ReadFrames(byte[] data, int at, int riffEnd, string name)
    {
        bool animSeen = false;
        int frames = 0;
        while (at < riffEnd)
        {
            (string tag, WebpChunk chunk) = NextChunk(data, ref at, riffEnd, name);
            switch (tag)
            {
                case "ANIM":
                    if (chunk.Length < 6)
                        throw new InvalidFileException(name, $"ANIM chunk of {chunk.Length} bytes; it needs 6");
                    animSeen = true;
                    break;
                case "ANMF":
                    if (!animSeen)
                        throw new InvalidFileException(name, "an ANMF frame before the ANIM chunk");
                    if (ReadFrame(data, chunk, frames + 1, keep: frames == 0, name))
                        frames++;
                    break;
                case "ALPH" or "VP8 " or "VP8L":
                    throw new InvalidFileException(name, $"a {tag.TrimEnd()} chunk outside the frames of an animated WebP");
                case "EXIF":
                    Exif ??= chunk;
                    break;
            }
        }
        if (frames == 0)
            throw new InvalidFileException(name, "the animated WebP has no frames");
    }

    /// <summary>
    /// Validates an ANMF frame (the header's offsets, then an optional ALPH and an image chunk, which give the
    /// frame's size) and keeps it as the picture when <paramref name="keep"/>. A frame without image chunks is skipped
    /// (false), as libwebp's demuxer skips it.
    /// </summary>
    private bool ReadFrame(byte[] data, WebpChunk frame, int number, bool keep, string name)
    {
        if (frame.Length < FrameHeaderBytes)
            throw new InvalidFileException(name, $"ANMF frame {number} of {frame.Length} bytes; its header needs {FrameHeaderBytes}");
        int x = 2 * ReadUInt24(data, frame.Start), y = 2 * ReadUInt24(data, frame.Start + 3);
        int at = frame.Start + FrameHeaderBytes, end = frame.Start + frame.Length;
        WebpChunk? alpha = null, image = null;
        string imageTag = "";
        while (at < end && image == null)
        {
            (string tag, WebpChunk chunk) = NextChunk(data, ref at, end, name, $"ANMF frame {number}");
            if (tag == "ALPH" && alpha == null)
                alpha = chunk;
            else if (tag is "VP8 " or "VP8L")
                (image, imageTag) = (chunk, tag);
            else
                break; // the frame's image data ends at any other chunk
        }
        if (image == null)
        {
            if (alpha != null)
                throw new InvalidFileException(name, $"ANMF frame {number} has an ALPH chunk and no image chunk");
            return false;
        }
        if (imageTag == "VP8L" && alpha != null)
            throw new InvalidFileException(name, $"ANMF frame {number}: an ALPH chunk beside a lossless (VP8L) image, which carries its own alpha");
        (int width, int height) = ImageSize(data, image.Value, imageTag == "VP8L", name);
        if (x + width > Width || y + height > Height)
            throw new InvalidFileException(name, $"ANMF frame {number} ({width}x{height} at {x},{y}) does not fit the {Width}x{Height} canvas");
        if (keep)
        {
            SetImage(data, image.Value, imageTag == "VP8L", alpha, name);
            (FrameX, FrameY) = (x, y);
        }
        return true;
    }

    /// <summary>Takes the image chunk (and its alpha); the frame's size is the chunk's own.</summary>
    private void SetImage(byte[] data, WebpChunk image, bool lossless, WebpChunk? alpha, string name)
    {
        (Image, Lossless, Alpha) = (image, lossless, alpha);
        (FrameWidth, FrameHeight) = ImageSize(data, image, lossless, name);
    }

    /// <summary>The size an image chunk's own header gives.</summary>
    private static (int Width, int Height) ImageSize(byte[] data, WebpChunk image, bool lossless, string name)
    {
        ReadOnlySpan<byte> bytes = data.AsSpan(image.Start, image.Length);
        if (lossless)
        {
            if (bytes.Length < 5 || bytes[0] != 0x2f)
                throw new InvalidFileException(name, "bad VP8L signature");
            uint bits = BinaryPrimitives.ReadUInt32LittleEndian(bytes[1..]);
            if (bits >> 29 != 0)
                throw new InvalidFileException(name, $"unknown VP8L version {bits >> 29}");
            return ((int)(bits & 0x3fff) + 1, (int)((bits >> 14) & 0x3fff) + 1);
        }
        if (bytes.Length < 10)
            throw new InvalidFileException(name, "truncated VP8 frame header");
        return (BinaryPrimitives.ReadUInt16LittleEndian(bytes[6..]) & 0x3fff, BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]) & 0x3fff);
    }

    /// <summary>A lossless image header's alpha flag (a hint: the pixels carry their alpha either way).</summary>
    private static bool LosslessAlphaHint(byte[] data, WebpChunk image) =>
        ((BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(image.Start + 1)) >> 28) & 1) != 0;

    /// <summary>Reads the chunk header at <paramref name="at"/> and moves past the (even-padded) payload, which must
    /// end by <paramref name="end"/> (the RIFF's end, or the frame's: <paramref name="within"/> names it).</summary>
    private static (string Tag, WebpChunk Chunk) NextChunk(byte[] data, ref int at, int end, string name, string within = "RIFF")
    {
        if (end - at < 8)
            throw new InvalidFileException(name, $"truncated chunk header at byte {at}");
        string tag = Encoding.Latin1.GetString(data, at, 4);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at + 4));
        if (size > end - at - 8)
        {
            throw new InvalidFileException(name,
                $"truncated: chunk '{Printable(tag)}' at byte {at} has {size} bytes but {end - at - 8} are left in the {within}");
        }
        var chunk = new WebpChunk(at + 8, (int)size);
        at = (int)Math.Min(end, at + 8 + size + (size & 1));
        return (tag, chunk);
    }

    private static int ReadUInt24(byte[] data, int at) => data[at] | data[at + 1] << 8 | data[at + 2] << 16;

    private static string Printable(string tag) => string.Create(tag.Length, tag, static (span, t) =>
    {
        for (int i = 0; i < t.Length; i++)
            span[i] = t[i] is >= ' ' and <= '~' ? t[i] : '?';
    });
}
