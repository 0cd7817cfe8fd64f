namespace Sd.Loaders.Webp;

/// <summary>One macroblock's loop-filter settings (RFC 6386 section 15.1); a zero limit means no filtering.</summary>
internal readonly record struct Vp8FilterStrength(int Limit, int InnerLevel, int HighEdgeVariance, bool Inner);

/// <summary>
/// VP8's loop filter (RFC 6386 section 15) over a whole decoded frame, macroblock by macroblock in raster order as
/// the decoder applies it row by row: the simple filter (luma only) or the normal one (luma and chroma), on the left
/// and top macroblock edges and, where the macroblock has coefficients or 4x4 modes, its inner 4x4 edges.
/// Reference: libwebp's dsp/dec.c filters, whose arithmetic this is.
/// </summary>
internal static class Vp8LoopFilter
{
    /// <param name="simple">The simple filter; otherwise the normal one.</param>
    public static void Apply(Vp8Planes planes, Vp8FilterStrength[] strengths, bool simple)
    {
        for (int mby = 0; mby < planes.MacroblocksHigh; mby++)
        {
            for (int mbx = 0; mbx < planes.MacroblocksWide; mbx++)
            {
                Vp8FilterStrength s = strengths[mby * planes.MacroblocksWide + mbx];
                if (s.Limit == 0)
                    continue;
                int y = mby * 16 * planes.YStride + mbx * 16;
                if (simple)
                    Simple(planes.Y, y, planes.YStride, mbx > 0, mby > 0, s);
                else
                    Normal(planes, mbx, mby, s);
            }
        }
    }

    private static void Simple(byte[] p, int at, int stride, bool left, bool top, Vp8FilterStrength s)
    {
        if (left)
            SimpleEdge(p, at, stride, 1, s.Limit + 4);
        if (s.Inner)
        {
            for (int k = 4; k < 16; k += 4)
                SimpleEdge(p, at + k, stride, 1, s.Limit);
        }
        if (top)
            SimpleEdge(p, at, 1, stride, s.Limit + 4);
        if (s.Inner)
        {
            for (int k = 4; k < 16; k += 4)
                SimpleEdge(p, at + k * stride, 1, stride, s.Limit);
        }
    }

    private static void Normal(Vp8Planes planes, int mbx, int mby, Vp8FilterStrength s)
    {
        int ys = planes.YStride, cs = planes.CStride;
        int y = mby * 16 * ys + mbx * 16, c = mby * 8 * cs + mbx * 8;
        if (mbx > 0)
        {
            EdgeLoop(planes.Y, y, ys, 1, 16, s.Limit + 4, s, macroblockEdge: true);
            EdgeLoop(planes.U, c, cs, 1, 8, s.Limit + 4, s, macroblockEdge: true);
            EdgeLoop(planes.V, c, cs, 1, 8, s.Limit + 4, s, macroblockEdge: true);
        }
        if (s.Inner)
        {
            for (int k = 4; k < 16; k += 4)
                EdgeLoop(planes.Y, y + k, ys, 1, 16, s.Limit, s, macroblockEdge: false);
            EdgeLoop(planes.U, c + 4, cs, 1, 8, s.Limit, s, macroblockEdge: false);
            EdgeLoop(planes.V, c + 4, cs, 1, 8, s.Limit, s, macroblockEdge: false);
        }
        if (mby > 0)
        {
            EdgeLoop(planes.Y, y, 1, ys, 16, s.Limit + 4, s, macroblockEdge: true);
            EdgeLoop(planes.U, c, 1, cs, 8, s.Limit + 4, s, macroblockEdge: true);
            EdgeLoop(planes.V, c, 1, cs, 8, s.Limit + 4, s, macroblockEdge: true);
        }
        if (s.Inner)
        {
            for (int k = 4; k < 16; k += 4)
                EdgeLoop(planes.Y, y + k * ys, 1, ys, 16, s.Limit, s, macroblockEdge: false);
            EdgeLoop(planes.U, c + 4 * cs, 1, cs, 8, s.Limit, s, macroblockEdge: false);
            EdgeLoop(planes.V, c + 4 * cs, 1, cs, 8, s.Limit, s, macroblockEdge: false);
        }
    }

    /// <summary>Filters <paramref name="count"/> positions along an edge: across it by <paramref name="across"/>
    /// (1 for a vertical edge, the stride for a horizontal one), from one position to the next by
    /// <paramref name="along"/>.</summary>
    private static void SimpleEdge(byte[] p, int at, int along, int across, int limit)
    {
        int threshold = 2 * limit + 1;
        for (int i = 0; i < 16; i++, at += along)
        {
            int p1 = p[at - 2 * across], p0 = p[at - across], q0 = p[at], q1 = p[at + across];
            if (4 * Math.Abs(p0 - q0) + Math.Abs(p1 - q1) <= threshold)
                FilterTwo(p, at, across);
        }
    }

    private static void EdgeLoop(byte[] p, int at, int along, int across, int count, int limit, Vp8FilterStrength s, bool macroblockEdge)
    {
        int threshold = 2 * limit + 1, inner = s.InnerLevel;
        for (int i = 0; i < count; i++, at += along)
        {
            int p3 = p[at - 4 * across], p2 = p[at - 3 * across], p1 = p[at - 2 * across], p0 = p[at - across];
            int q0 = p[at], q1 = p[at + across], q2 = p[at + 2 * across], q3 = p[at + 3 * across];
            if (4 * Math.Abs(p0 - q0) + Math.Abs(p1 - q1) > threshold)
                continue;
            if (Math.Abs(p3 - p2) > inner || Math.Abs(p2 - p1) > inner || Math.Abs(p1 - p0) > inner
                || Math.Abs(q3 - q2) > inner || Math.Abs(q2 - q1) > inner || Math.Abs(q1 - q0) > inner)
                continue;
            if (Math.Abs(p1 - p0) > s.HighEdgeVariance || Math.Abs(q1 - q0) > s.HighEdgeVariance)
                FilterTwo(p, at, across);
            else if (macroblockEdge)
                FilterSix(p, at, across);
            else
                FilterFour(p, at, across);
        }
    }

    private static void FilterTwo(byte[] p, int at, int step)
    {
        int p1 = p[at - 2 * step], p0 = p[at - step], q0 = p[at], q1 = p[at + step];
        int a = 3 * (q0 - p0) + SignedClip(p1 - q1, 128);
        int a1 = SignedClip((a + 4) >> 3, 16);
        int a2 = SignedClip((a + 3) >> 3, 16);
        p[at - step] = Vp8Intra.Clip(p0 + a2);
        p[at] = Vp8Intra.Clip(q0 - a1);
    }

    private static void FilterFour(byte[] p, int at, int step)
    {
        int p1 = p[at - 2 * step], p0 = p[at - step], q0 = p[at], q1 = p[at + step];
        int a = 3 * (q0 - p0);
        int a1 = SignedClip((a + 4) >> 3, 16);
        int a2 = SignedClip((a + 3) >> 3, 16);
        int a3 = (a1 + 1) >> 1;
        p[at - 2 * step] = Vp8Intra.Clip(p1 + a3);
        p[at - step] = Vp8Intra.Clip(p0 + a2);
        p[at] = Vp8Intra.Clip(q0 - a1);
        p[at + step] = Vp8Intra.Clip(q1 - a3);
    }

    private static void FilterSix(byte[] p, int at, int step)
    {
        int p2 = p[at - 3 * step], p1 = p[at - 2 * step], p0 = p[at - step];
        int q0 = p[at], q1 = p[at + step], q2 = p[at + 2 * step];
        int a = SignedClip(3 * (q0 - p0) + SignedClip(p1 - q1, 128), 128);
        int a1 = (27 * a + 63) >> 7;
        int a2 = (18 * a + 63) >> 7;
        int a3 = (9 * a + 63) >> 7;
        p[at - 3 * step] = Vp8Intra.Clip(p2 + a3);
        p[at - 2 * step] = Vp8Intra.Clip(p1 + a2);
        p[at - step] = Vp8Intra.Clip(p0 + a1);
        p[at] = Vp8Intra.Clip(q0 - a1);
        p[at + step] = Vp8Intra.Clip(q1 - a2);
        p[at + 2 * step] = Vp8Intra.Clip(q2 - a3);
    }

    /// <summary>Clamps to [-<paramref name="half"/>, <paramref name="half"/> - 1].</summary>
    private static int SignedClip(int v, int half) => Math.Clamp(v, -half, half - 1);
}
