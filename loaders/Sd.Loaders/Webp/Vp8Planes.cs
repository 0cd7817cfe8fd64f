namespace Sd.Loaders.Webp;

/// <summary>A decoded VP8 frame: Y, U and V planes covering whole macroblocks (the picture is the top-left
/// <see cref="Width"/> x <see cref="Height"/> of Y, chroma at half resolution rounded up).</summary>
internal sealed class Vp8Planes
{
    public Vp8Planes(int width, int height)
    {
        Width = width;
        Height = height;
        MacroblocksWide = (width + 15) >> 4;
        MacroblocksHigh = (height + 15) >> 4;
        Y = new byte[(long)YStride * MacroblocksHigh * 16];
        U = new byte[(long)CStride * MacroblocksHigh * 8];
        V = new byte[U.Length];
    }

    public int Width { get; }

    public int Height { get; }

    public int MacroblocksWide { get; }

    public int MacroblocksHigh { get; }

    public int YStride => MacroblocksWide * 16;

    public int CStride => MacroblocksWide * 8;

    public byte[] Y { get; }

    public byte[] U { get; }

    public byte[] V { get; }
}
