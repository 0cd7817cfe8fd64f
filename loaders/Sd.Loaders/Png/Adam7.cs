namespace Sd.Loaders.Png;

/// <summary>
/// PNG's Adam7 interlacing (PNG spec section 8.2): the picture is stored as seven reduced pictures, pass p holding the
/// pixels at (XStart + i XStep, YStart + j YStep), each filtered on its own as if it were a whole picture.
/// </summary>
internal static class Adam7
{
    public readonly record struct Pass(int XStart, int YStart, int XStep, int YStep)
    {
        /// <summary>The reduced picture's width and height in a <paramref name="width"/> x <paramref name="height"/> one (0 when empty).</summary>
        public (int Width, int Height) Size(int width, int height) =>
            (width > XStart ? (width - XStart + XStep - 1) / XStep : 0, height > YStart ? (height - YStart + YStep - 1) / YStep : 0);
    }

    public static readonly Pass[] Passes =
    [
        new(0, 0, 8, 8), new(4, 0, 8, 8), new(0, 4, 4, 8), new(2, 0, 4, 4), new(0, 2, 2, 4), new(1, 0, 2, 2), new(0, 1, 1, 2),
    ];

    /// <summary>Puts a decoded pass's pixels (<paramref name="channels"/> bytes each) at their places in the picture.</summary>
    public static void Scatter(byte[] pass, Pass at, int passWidth, int passHeight, byte[] picture, int width, int channels)
    {
        for (int j = 0; j < passHeight; j++)
        {
            for (int i = 0; i < passWidth; i++)
            {
                long target = ((long)(at.YStart + j * at.YStep) * width + at.XStart + i * at.XStep) * channels;
                pass.AsSpan((j * passWidth + i) * channels, channels).CopyTo(picture.AsSpan((int)target, channels));
            }
        }
    }
}
