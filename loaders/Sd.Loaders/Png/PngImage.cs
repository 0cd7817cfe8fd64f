namespace Sd.Loaders.Png;

/// <summary>
/// An 8-bit-per-channel image: gray (1 channel), RGB (3) or RGBA (4), pixels row-major with channels interleaved,
/// plus the PNG text entries (keyword → text; Stable Diffusion tools keep the generation settings under "parameters").
/// </summary>
public sealed class PngImage
{
    /// <summary>Wraps <paramref name="pixels"/> without copying it; <paramref name="text"/> is copied.</summary>
    /// <exception cref="ArgumentException">A dimension, the channel count or the pixel buffer length is invalid.</exception>
    public PngImage(int width, int height, int channels, byte[] pixels, IReadOnlyDictionary<string, string>? text = null)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        if (channels is not (1 or 3 or 4))
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1 (gray), 3 (RGB) or 4 (RGBA)");
        long expected = (long)width * height * channels;
        if (pixels.LongLength != expected)
        {
            throw new ArgumentException(
                $"pixels has {pixels.LongLength} bytes, a {width}x{height} image with {channels} channels needs {expected}",
                nameof(pixels));
        }
        Width = width;
        Height = height;
        Channels = channels;
        Pixels = pixels;
        // Ordinal so keywords compare exactly as the bytes in the file do; insertion order is kept for writing.
        Text = text == null
            ? new Dictionary<string, string>(StringComparer.Ordinal)
            : new Dictionary<string, string>(text, StringComparer.Ordinal);
    }

    public int Width { get; }

    public int Height { get; }

    /// <summary>1 gray, 3 RGB, 4 RGBA.</summary>
    public int Channels { get; }

    /// <summary>Row-major, channels interleaved, Width * Height * Channels bytes (not a copy).</summary>
    public byte[] Pixels { get; }

    public IReadOnlyDictionary<string, string> Text { get; }
}
