using System.Runtime.CompilerServices;
using Sd.Kernels.Elementwise;

namespace Sd.Kernels.Attention;

/// <summary>
/// What the vector attention kernels need beyond <see cref="IF32Vector{TVec}"/> that differs per width; the rest
/// (the slice drivers, softmax passes, causal mask and the Q/O transposes) is written once in
/// <see cref="AttentionKernels"/>. A query block is two vectors of queries, and the buffers are "transposed": one
/// row of 2 x Count floats per key or channel, one lane per query. The two microkernels stay per width because their
/// register blocking is fitted to the register file (8 x 2 score accumulators in AVX-512's 32 zmm, 6 x 2 in AVX2's 16
/// ymm); each covers the keys or channels its blocking divides and leaves the rest to a shared one-at-a-time loop.
/// </summary>
internal unsafe interface IAttentionTiles<TVec>
    where TVec : unmanaged
{
    /// <summary>
    /// st[j*Rows + r] = tile.Start[r] + sum_c k[j*ldk + c] * qt[c*Rows + r] for keys j in [0, n), n the largest
    /// multiple of the blocking not above <paramref name="count"/>, finished as <typeparamref name="TOut"/> says (see
    /// <see cref="ScoreOutput"/>); returns n.
    /// </summary>
    static abstract int ScoreBlocks<TOut>(float* qt, float* k, nint ldk, int d, int count, float* st, ScoreTile<TVec>* tile)
        where TOut : struct, IScoreOutput;

    /// <summary>
    /// ot[c*Rows + r] = ot[c*Rows + r] * alpha[r] + sum_j v[j*ldv + c] * pt[j*Rows + r] for keys j in
    /// [0, <paramref name="count"/>) and channels c in [0, n), n the largest multiple of the blocking not above
    /// <paramref name="d"/>; returns n.
    /// </summary>
    static abstract int AccumulateBlocks(
        float* pt, float* v, nint ldv, int d, int count, TVec alpha0, TVec alpha1, float* ot);

    /// <summary>
    /// Keys per pass of <see cref="AccumulateBlocks"/> over the channels (see AttentionKernels' Accumulate): few
    /// enough that their P and V rows stay in L1 across the channel blocks' passes.
    /// </summary>
    static abstract int AccumulateKeys { get; }

    /// <summary>
    /// 2^x for x &lt;= 0 (a score minus its row max; the flash loop's lazily rescaled tiles also pass x up to
    /// <see cref="ScoreTile{TVec}.RescaleLimit"/>), relative error under 1e-7, and exactly 0 far enough below
    /// (each width flushes at its own point, see the implementations): x = n + f with n = round(x), 2^f from
    /// <see cref="Exp2Polynomial"/>, then the 2^n factor. Scores are kept in base-2 units (log2 e folded into the Q
    /// scale) so that the softmax needs only this.
    /// </summary>
    static abstract TVec Exp2(TVec x);

    /// <summary>v[i] = row i on entry, column i on exit, for a Count x Count tile.</summary>
    static abstract void Transpose(TVec* v);
}

/// <summary>The 2^f part of both widths' <see cref="IAttentionTiles{TVec}.Exp2"/>.</summary>
internal static class Exp2Polynomial
{
    // 2^f on [-1/2, 1/2]: degree-6 minimax polynomial (Remez fit of the relative error, 2e-9; under 1e-7 once
    // evaluated in float), coefficients of f^1 .. f^6 (that of f^0 is 1).
    private const float C1 = 6.931471825e-01f;
    private const float C2 = 2.402264625e-01f;
    private const float C3 = 5.550328642e-02f;
    private const float C4 = 9.618489072e-03f;
    private const float C5 = 1.339993090e-03f;
    private const float C6 = 1.534581243e-04f;

    /// <summary>2^f for f in [-1/2, 1/2], by Horner's rule in FMAs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TVec Evaluate<TVec, V>(TVec f)
        where TVec : struct
        where V : struct, IF32Vector<TVec>
    {
        TVec p = V.FusedMultiplyAdd(V.Create(C6), f, V.Create(C5));
        p = V.FusedMultiplyAdd(p, f, V.Create(C4));
        p = V.FusedMultiplyAdd(p, f, V.Create(C3));
        p = V.FusedMultiplyAdd(p, f, V.Create(C2));
        p = V.FusedMultiplyAdd(p, f, V.Create(C1));
        return V.FusedMultiplyAdd(p, f, V.Create(1f));
    }
}

/// <summary>
/// What a score microkernel does with a finished accumulator pair: <see cref="RawScores"/> stores it,
/// <see cref="ShiftedExponentials"/> stores 2^a and folds a into the tile's max and 2^a into its sum.
/// </summary>
internal interface IScoreOutput
{
    static abstract bool Exponentiate { get; }
}

internal readonly struct RawScores : IScoreOutput
{
    public static bool Exponentiate => false;
}

internal readonly struct ShiftedExponentials : IScoreOutput
{
    public static bool Exponentiate => true;
}

/// <summary>
/// One query block's score tile state, per lane (two vectors): the accumulators' start (0 for raw scores, minus the
/// running offset for shifted exponentials, so the shift costs nothing) and the max and sum that the exponentiating
/// microkernel folds into.
/// </summary>
internal struct ScoreTile<TVec>
    where TVec : unmanaged
{
    /// <summary>
    /// How far (base-2 units) a tile's scores may pass the running offset and still be exponentiated against it:
    /// probabilities up to 2^32, so a row of n keys sums to at most n 2^32 and the output accumulators to n 2^32
    /// times the largest |V|, overflowing float only where |V| exceeds about 2^96 / n. Wide, because a first tile's
    /// offset is the max of only its first keys, and a tile that passes the limit is scored twice.
    /// </summary>
    public const float RescaleLimit = 32;

    public TVec Start0, Start1;
    public TVec Max0, Max1;
    public TVec Sum0, Sum1;
}

/// <summary>The finishing store shared by both widths' score microkernels (see <see cref="IScoreOutput"/>).</summary>
internal static unsafe class ScoreOutput
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store<TVec, V, T, TOut>(TVec a0, TVec a1, float* s, ref TVec max0, ref TVec max1, ref TVec sum0, ref TVec sum1)
        where TVec : unmanaged
        where V : struct, IF32Vector<TVec>
        where T : struct, IAttentionTiles<TVec>
        where TOut : struct, IScoreOutput
    {
        if (TOut.Exponentiate)
        {
            max0 = V.Max(max0, a0);
            max1 = V.Max(max1, a1);
            a0 = T.Exp2(a0);
            a1 = T.Exp2(a1);
            sum0 = V.Add(sum0, a0);
            sum1 = V.Add(sum1, a1);
        }
        V.Store(a0, s);
        V.Store(a1, s + V.Count);
    }
}
