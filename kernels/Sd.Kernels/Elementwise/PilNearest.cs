namespace Sd.Kernels.Elementwise;

/// <summary>
/// Pillow's nearest-neighbour resize (<c>Image.resize(size, Image.NEAREST)</c>; _imaging.c's _resize hands it to
/// Geometry.c's ImagingScaleAffine): output pixel x copies input pixel (int)x', where x' starts at s / 2 and adds
/// s = in / out (float64) once per pixel, accumulated, which picks another pixel than (int)((x + 0.5) s) at some
/// sizes; rows alike. Bit for bit with Pillow 9.4. Scalar: it runs once per picture (a hires fix's upscale).
/// </summary>
public static class PilNearest
{
    /// <summary>
    /// Resizes <paramref name="source"/> (height x width pixels of <paramref name="channels"/> interleaved bytes) into
    /// <paramref name="destination"/> (outHeight x outWidth pixels).
    /// </summary>
    public static void Resize(ReadOnlySpan<byte> source, int height, int width, int channels, Span<byte> destination, int outHeight, int outWidth)
    {
        PilResample.CheckSizes(source.Length, height, width, channels, destination.Length, outHeight, outWidth);
        int[] columns = SourceIndices(width, outWidth), rows = SourceIndices(height, outHeight);
        for (int y = 0; y < outHeight; y++)
        {
            ReadOnlySpan<byte> from = source.Slice(rows[y] * width * channels, width * channels);
            Span<byte> to = destination.Slice(y * outWidth * channels, outWidth * channels);
            for (int x = 0; x < outWidth; x++)
            {
                from.Slice(columns[x] * channels, channels).CopyTo(to.Slice(x * channels, channels));
            }
        }
    }

    /// <summary>The input pixel each of <paramref name="outSize"/> output pixels copies along one axis.</summary>
    private static int[] SourceIndices(int size, int outSize)
    {
        double step = (double)size / outSize, at = step * 0.5;
        var indices = new int[outSize];
        for (int i = 0; i < outSize; i++)
        {
            // The sum stays below size - step / 2 by far more than its rounding: the bound only keeps the read in range.
            indices[i] = Math.Min((int)at, size - 1);
            at += step;
        }
        return indices;
    }
}
