namespace Sd.Loaders.Webp;

/// <summary>VP8 intra-prediction modes, numbered as libwebp numbers them (its probability tables use this order).</summary>
internal static class Vp8Modes
{
    // 4x4 modes; DC, TM, V and H are the 16x16 and chroma modes too.
    public const int Dc = 0, TrueMotion = 1, Vertical = 2, Horizontal = 3, DownRight = 4, VerticalRight = 5,
        DownLeft = 6, VerticalLeft = 7, HorizontalDown = 8, HorizontalUp = 9;

    // DC prediction where the top row, the left column or both lie outside the picture.
    public const int DcNoTop = 4, DcNoLeft = 5, DcNoTopLeft = 6;
}

/// <summary>
/// VP8 intra prediction (RFC 6386 section 12) into a reconstruction buffer of stride <see cref="Stride"/>, where the
/// row above a block and the column left of it (and the above-right samples of 4x4 blocks) are already in place.
/// Reference: libwebp's dsp/dec.c predictors, whose arithmetic this is.
/// </summary>
internal static class Vp8Intra
{
    public const int Stride = 32;

    /// <summary>Predicts a 16x16 luma (<paramref name="size"/> 16) or 8x8 chroma (8) block.</summary>
    /// <param name="mode">DC, TM, V, H or one of the edge DC modes.</param>
    public static void Block(Span<byte> b, int at, int size, int mode)
    {
        int shift = size == 16 ? 4 : 3;
        switch (mode)
        {
            case Vp8Modes.TrueMotion:
                TrueMotion(b, at, size);
                return;
            case Vp8Modes.Vertical:
                for (int y = 0; y < size; y++)
                    b.Slice(at - Stride, size).CopyTo(b.Slice(at + y * Stride));
                return;
            case Vp8Modes.Horizontal:
                for (int y = 0; y < size; y++)
                    b.Slice(at + y * Stride, size).Fill(b[at + y * Stride - 1]);
                return;
            case Vp8Modes.Dc:
                Fill(b, at, size, (SumTop(b, at, size) + SumLeft(b, at, size) + size) >> (shift + 1));
                return;
            case Vp8Modes.DcNoTop:
                Fill(b, at, size, (SumLeft(b, at, size) + size / 2) >> shift);
                return;
            case Vp8Modes.DcNoLeft:
                Fill(b, at, size, (SumTop(b, at, size) + size / 2) >> shift);
                return;
            default:
                Fill(b, at, size, 0x80);
                return;
        }
    }

    /// <summary>Predicts a 4x4 luma block in one of the ten 4x4 modes.</summary>
    public static void Subblock(Span<byte> b, int at, int mode)
    {
        int top = at - Stride;
        int x0 = b[top - 1];
        int a = b[top], bb = b[top + 1], c = b[top + 2], d = b[top + 3];
        int e = b[top + 4], f = b[top + 5], g = b[top + 6], h = b[top + 7];
        int i = b[at - 1], j = b[at + Stride - 1], k = b[at + 2 * Stride - 1], l = b[at + 3 * Stride - 1];
        switch (mode)
        {
            case Vp8Modes.Dc:
                Fill(b, at, 4, (a + bb + c + d + i + j + k + l + 4) >> 3);
                break;
            case Vp8Modes.TrueMotion:
                TrueMotion(b, at, 4);
                break;
            case Vp8Modes.Vertical:
                for (int y = 0; y < 4; y++)
                {
                    Set(b, at, 0, y, Avg3(x0, a, bb));
                    Set(b, at, 1, y, Avg3(a, bb, c));
                    Set(b, at, 2, y, Avg3(bb, c, d));
                    Set(b, at, 3, y, Avg3(c, d, e));
                }
                break;
            case Vp8Modes.Horizontal:
                b.Slice(at, 4).Fill((byte)Avg3(x0, i, j));
                b.Slice(at + Stride, 4).Fill((byte)Avg3(i, j, k));
                b.Slice(at + 2 * Stride, 4).Fill((byte)Avg3(j, k, l));
                b.Slice(at + 3 * Stride, 4).Fill((byte)Avg3(k, l, l));
                break;
            case Vp8Modes.DownRight:
                Diagonal(b, at, -1, Avg3(j, k, l), Avg3(i, j, k), Avg3(x0, i, j), Avg3(a, x0, i),
                    Avg3(bb, a, x0), Avg3(c, bb, a), Avg3(d, c, bb));
                break;
            case Vp8Modes.DownLeft:
                Diagonal(b, at, 1, Avg3(a, bb, c), Avg3(bb, c, d), Avg3(c, d, e), Avg3(d, e, f),
                    Avg3(e, f, g), Avg3(f, g, h), Avg3(g, h, h));
                break;
            case Vp8Modes.VerticalRight:
                Set(b, at, 0, 0, Avg2(x0, a)); Set(b, at, 1, 2, Avg2(x0, a));
                Set(b, at, 1, 0, Avg2(a, bb)); Set(b, at, 2, 2, Avg2(a, bb));
                Set(b, at, 2, 0, Avg2(bb, c)); Set(b, at, 3, 2, Avg2(bb, c));
                Set(b, at, 3, 0, Avg2(c, d));
                Set(b, at, 0, 3, Avg3(k, j, i));
                Set(b, at, 0, 2, Avg3(j, i, x0));
                Set(b, at, 0, 1, Avg3(i, x0, a)); Set(b, at, 1, 3, Avg3(i, x0, a));
                Set(b, at, 1, 1, Avg3(x0, a, bb)); Set(b, at, 2, 3, Avg3(x0, a, bb));
                Set(b, at, 2, 1, Avg3(a, bb, c)); Set(b, at, 3, 3, Avg3(a, bb, c));
                Set(b, at, 3, 1, Avg3(bb, c, d));
                break;
            case Vp8Modes.VerticalLeft:
                Set(b, at, 0, 0, Avg2(a, bb));
                Set(b, at, 1, 0, Avg2(bb, c)); Set(b, at, 0, 2, Avg2(bb, c));
                Set(b, at, 2, 0, Avg2(c, d)); Set(b, at, 1, 2, Avg2(c, d));
                Set(b, at, 3, 0, Avg2(d, e)); Set(b, at, 2, 2, Avg2(d, e));
                Set(b, at, 0, 1, Avg3(a, bb, c));
                Set(b, at, 1, 1, Avg3(bb, c, d)); Set(b, at, 0, 3, Avg3(bb, c, d));
                Set(b, at, 2, 1, Avg3(c, d, e)); Set(b, at, 1, 3, Avg3(c, d, e));
                Set(b, at, 3, 1, Avg3(d, e, f)); Set(b, at, 2, 3, Avg3(d, e, f));
                Set(b, at, 3, 2, Avg3(e, f, g));
                Set(b, at, 3, 3, Avg3(f, g, h));
                break;
            case Vp8Modes.HorizontalDown:
                Set(b, at, 0, 0, Avg2(i, x0)); Set(b, at, 2, 1, Avg2(i, x0));
                Set(b, at, 0, 1, Avg2(j, i)); Set(b, at, 2, 2, Avg2(j, i));
                Set(b, at, 0, 2, Avg2(k, j)); Set(b, at, 2, 3, Avg2(k, j));
                Set(b, at, 0, 3, Avg2(l, k));
                Set(b, at, 3, 0, Avg3(a, bb, c));
                Set(b, at, 2, 0, Avg3(x0, a, bb));
                Set(b, at, 1, 0, Avg3(i, x0, a)); Set(b, at, 3, 1, Avg3(i, x0, a));
                Set(b, at, 1, 1, Avg3(j, i, x0)); Set(b, at, 3, 2, Avg3(j, i, x0));
                Set(b, at, 1, 2, Avg3(k, j, i)); Set(b, at, 3, 3, Avg3(k, j, i));
                Set(b, at, 1, 3, Avg3(l, k, j));
                break;
            default: // horizontal-up
                Set(b, at, 0, 0, Avg2(i, j));
                Set(b, at, 2, 0, Avg2(j, k)); Set(b, at, 0, 1, Avg2(j, k));
                Set(b, at, 2, 1, Avg2(k, l)); Set(b, at, 0, 2, Avg2(k, l));
                Set(b, at, 1, 0, Avg3(i, j, k));
                Set(b, at, 3, 0, Avg3(j, k, l)); Set(b, at, 1, 1, Avg3(j, k, l));
                Set(b, at, 3, 1, Avg3(k, l, l)); Set(b, at, 1, 2, Avg3(k, l, l));
                Set(b, at, 3, 2, l); Set(b, at, 2, 2, l);
                Set(b, at, 0, 3, l); Set(b, at, 1, 3, l); Set(b, at, 2, 3, l); Set(b, at, 3, 3, l);
                break;
        }
    }

    /// <summary>Fills a 4x4 block whose anti-diagonals (<paramref name="direction"/> 1: x + y constant, from the
    /// top-left) or diagonals (-1: x - y constant, from the bottom-left) each take one of seven values.</summary>
    private static void Diagonal(Span<byte> b, int at, int direction, int v0, int v1, int v2, int v3, int v4, int v5, int v6)
    {
        ReadOnlySpan<int> values = [v0, v1, v2, v3, v4, v5, v6];
        for (int y = 0; y < 4; y++)
        {
            for (int x = 0; x < 4; x++)
                Set(b, at, x, y, values[direction > 0 ? x + y : 3 + x - y]);
        }
    }

    private static void TrueMotion(Span<byte> b, int at, int size)
    {
        int topLeft = b[at - Stride - 1];
        for (int y = 0; y < size; y++)
        {
            int left = b[at + y * Stride - 1] - topLeft;
            for (int x = 0; x < size; x++)
                b[at + y * Stride + x] = Clip(b[at - Stride + x] + left);
        }
    }

    private static int SumTop(Span<byte> b, int at, int size)
    {
        int sum = 0;
        for (int x = 0; x < size; x++)
            sum += b[at - Stride + x];
        return sum;
    }

    private static int SumLeft(Span<byte> b, int at, int size)
    {
        int sum = 0;
        for (int y = 0; y < size; y++)
            sum += b[at + y * Stride - 1];
        return sum;
    }

    private static void Fill(Span<byte> b, int at, int size, int value)
    {
        for (int y = 0; y < size; y++)
            b.Slice(at + y * Stride, size).Fill((byte)value);
    }

    private static void Set(Span<byte> b, int at, int x, int y, int value) => b[at + y * Stride + x] = (byte)value;

    private static int Avg3(int a, int b, int c) => (a + 2 * b + c + 2) >> 2;

    private static int Avg2(int a, int b) => (a + b + 1) >> 1;

    public static byte Clip(int v) => (byte)Math.Clamp(v, 0, 255);
}
