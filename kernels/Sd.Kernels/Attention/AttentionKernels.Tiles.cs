namespace Sd.Kernels.Attention;

public static unsafe partial class AttentionKernels
{
    // The tile passes of the vector variants. Buffers are in the query-lane layout: one row of Rows floats per key
    // (scores, probabilities) or per channel (queries, outputs), lanes [0, V.Count) in the first vector of a row and
    // [V.Count, Rows) in the second.
    private static partial class QueryLanes<TVec, V, T>
    {
        /// <summary>
        /// The score of a hidden key: finite, so that (score - max) and (old max - new max) never become inf - inf,
        /// and Exp2 of anything that far below the max is exactly 0.
        /// </summary>
        private const float Hidden = float.MinValue;

        /// <summary>
        /// st[j*Rows + r] = sum_c k[j*ldk + c] * qt[c*Rows + r] for keys j in [0, count): the width's register-blocked
        /// microkernel, then one key at a time for the keys its blocking leaves.
        /// </summary>
        private static void Scores(float* qt, float* k, nint ldk, int d, int count, float* st)
        {
            ScoreTile<TVec> tile = default;
            Scores<RawScores>(qt, k, ldk, d, count, st, &tile);
        }

        /// <summary>
        /// st = 2^(s - offset) for the tile's scores s, their per-lane max (minus the offset) and the sum of those
        /// exponentials added to sum0/sum1: the exponentials are formed in the score microkernel's registers, so
        /// the tile is stored once and read once (by the P V product) instead of three times more by the max and
        /// exponentiation passes (AVX2, short of registers, makes them in one pass over its stored tile instead).
        /// Returns false, st unusable and the sums unchanged, when a score exceeds the offset by more than
        /// <see cref="ScoreTile{TVec}.RescaleLimit"/>: the caller then takes the tile the exact way.
        /// </summary>
        private static bool TryExponentiateShifted(float* qt, float* k, nint ldk, int d, int count, float* st,
            TVec offset0, TVec offset1, ref TVec sum0, ref TVec sum1)
        {
            ScoreTile<TVec> tile;
            tile.Start0 = V.Subtract(V.Zero, offset0);
            tile.Start1 = V.Subtract(V.Zero, offset1);
            tile.Max0 = tile.Max1 = V.Create(Hidden);
            tile.Sum0 = tile.Sum1 = V.Zero;
            Scores<ShiftedExponentials>(qt, k, ldk, d, count, st, &tile);
            TVec limit = V.Create(ScoreTile<TVec>.RescaleLimit);
            if (V.AnyGreaterThan(tile.Max0, limit) || V.AnyGreaterThan(tile.Max1, limit))
            {
                return false;
            }
            sum0 = V.Add(sum0, tile.Sum0);
            sum1 = V.Add(sum1, tile.Sum1);
            return true;
        }

        /// <summary>
        /// <see cref="TryExponentiateShifted"/> for a row's first tile, which has no running max yet: its first
        /// <see cref="SampleKeys"/> keys are scored and exponentiated exactly, and their max is the offset for the
        /// rest. On success max0/max1 are that offset and sum0/sum1 the tile's sums (both were at their start values);
        /// on failure they are left as they were.
        /// </summary>
        private static bool TryExponentiateFirst(float* qt, float* k, nint ldk, int d, int count, float* st,
            ref TVec max0, ref TVec max1, ref TVec sum0, ref TVec sum1)
        {
            int sample = Math.Min(count, SampleKeys);
            Scores(qt, k, ldk, d, sample, st);
            TVec offset0 = max0, offset1 = max1;
            RowMax(st, sample, ref offset0, ref offset1);
            TVec total0 = V.Zero, total1 = V.Zero;
            Exponentiate(st, sample, offset0, offset1, ref total0, ref total1);
            if (!TryExponentiateShifted(qt, k + sample * ldk, ldk, d, count - sample, st + sample * Rows, offset0, offset1, ref total0, ref total1))
            {
                return false;
            }
            (max0, max1, sum0, sum1) = (offset0, offset1, total0, total1);
            return true;
        }

        /// <summary>Keys of a row's first tile scored exactly to set its offset: one AVX-512 score block.</summary>
        private const int SampleKeys = 8;

        private static void Scores<TOut>(float* qt, float* k, nint ldk, int d, int count, float* st, ScoreTile<TVec>* tile)
            where TOut : struct, IScoreOutput
        {
            for (int j = T.ScoreBlocks<TOut>(qt, k, ldk, d, count, st, tile); j < count; j++)
            {
                float* kj = k + j * ldk;
                TVec a0 = tile->Start0, a1 = tile->Start1;
                for (int c = 0; c < d; c++)
                {
                    TVec b = V.Create(kj[c]);
                    a0 = V.FusedMultiplyAdd(b, V.Load(qt + c * Rows), a0);
                    a1 = V.FusedMultiplyAdd(b, V.Load(qt + c * Rows + V.Count), a1);
                }
                ScoreOutput.Store<TVec, V, T, TOut>(a0, a1, st + j * Rows, ref tile->Max0, ref tile->Max1, ref tile->Sum0, ref tile->Sum1);
            }
        }

        /// <summary>
        /// Hides key <paramref name="key0"/> + j from query <paramref name="query0"/> + r when the key is later (score
        /// <see cref="Hidden"/>), for the key rows of a tile that cross the diagonal. Key 0 is never hidden, so every
        /// query has a real running max from its first tile on.
        /// </summary>
        private static void MaskCausal(float* st, int key0, int count, int query0)
        {
            TVec hidden = V.Create(Hidden);
            for (int j = Math.Max(0, query0 + 1 - key0); j < count; j++)
            {
                // The key is later than the queries of lanes [0, later): a prefix of the row, masked as a tail is.
                nint later = key0 + j - query0;
                float* s = st + j * Rows;
                V.Store(V.ConditionalSelect(V.Mask(later), hidden, V.Load(s)), s);
                V.Store(V.ConditionalSelect(V.Mask(later - V.Count), hidden, V.Load(s + V.Count)), s + V.Count);
            }
        }

        /// <summary>Per-lane max over <paramref name="count"/> score rows, folded into the running max0/max1.</summary>
        private static void RowMax(float* st, int count, ref TVec max0, ref TVec max1)
        {
            TVec m0 = max0, m1 = max1;
            for (int j = 0; j < count; j++)
            {
                m0 = V.Max(m0, V.Load(st + j * Rows));
                m1 = V.Max(m1, V.Load(st + j * Rows + V.Count));
            }
            max0 = m0;
            max1 = m1;
        }

        /// <summary>st = 2^(st - max) in place; the per-lane sums are added to sum0/sum1.</summary>
        private static void Exponentiate(float* st, int count, TVec max0, TVec max1, ref TVec sum0, ref TVec sum1)
        {
            TVec s0 = V.Zero, s1 = V.Zero;
            for (int j = 0; j < count; j++)
            {
                float* s = st + j * Rows;
                TVec e0 = T.Exp2(V.Subtract(V.Load(s), max0));
                TVec e1 = T.Exp2(V.Subtract(V.Load(s + V.Count), max1));
                V.Store(e0, s);
                V.Store(e1, s + V.Count);
                s0 = V.Add(s0, e0);
                s1 = V.Add(s1, e1);
            }
            sum0 = V.Add(sum0, s0);
            sum1 = V.Add(sum1, s1);
        }

        /// <summary>st *= 1/sum per lane: the naive baseline's explicit normalized probabilities.</summary>
        private static void Normalize(float* st, int count, TVec sum0, TVec sum1)
        {
            TVec inverse0 = V.Divide(V.Create(1f), sum0);
            TVec inverse1 = V.Divide(V.Create(1f), sum1);
            for (int j = 0; j < count; j++)
            {
                float* s = st + j * Rows;
                V.Store(V.Multiply(V.Load(s), inverse0), s);
                V.Store(V.Multiply(V.Load(s + V.Count), inverse1), s + V.Count);
            }
        }

        /// <summary>
        /// ot[c*Rows + r] = ot[c*Rows + r] * alpha[r] + sum_j v[j*ldv + c] * pt[j*Rows + r] for every channel c in
        /// [0, d) and keys j in [0, count): the flash rescale rides on the accumulator load. ot must hold finite values
        /// (zeroed before a block's first tile, where alpha is 0). The keys go in chunks of
        /// <see cref="IAttentionTiles{TVec}.AccumulateKeys"/>, each a full pass over the channels, so that a chunk's P
        /// and V rows stay in L1 while every channel block re-reads them (a pass reads one V line per key). Each
        /// accumulator still sums its keys in order, so the result does not depend on the chunking.
        /// </summary>
        private static void Accumulate(
            float* pt, float* v, nint ldv, int d, int count, TVec alpha0, TVec alpha1, float* ot)
        {
            for (int j0 = 0; j0 < count; j0 += T.AccumulateKeys)
            {
                int keys = Math.Min(T.AccumulateKeys, count - j0);
                AccumulateChunk(pt + j0 * Rows, v + j0 * ldv, ldv, d, keys, alpha0, alpha1, ot);
                alpha0 = alpha1 = V.Create(1f); // the rescale applies once, with the first chunk
            }
        }

        /// <summary>
        /// <see cref="Accumulate"/> for one chunk of keys: the width's microkernel, then one channel at a time for the
        /// channels its blocking leaves.
        /// </summary>
        private static void AccumulateChunk(
            float* pt, float* v, nint ldv, int d, int count, TVec alpha0, TVec alpha1, float* ot)
        {
            for (int c = T.AccumulateBlocks(pt, v, ldv, d, count, alpha0, alpha1, ot); c < d; c++)
            {
                float* o = ot + c * Rows;
                TVec a0 = V.Multiply(V.Load(o), alpha0), a1 = V.Multiply(V.Load(o + V.Count), alpha1);
                for (int j = 0; j < count; j++)
                {
                    TVec b = V.Create(v[j * ldv + c]);
                    a0 = V.FusedMultiplyAdd(b, V.Load(pt + j * Rows), a0);
                    a1 = V.FusedMultiplyAdd(b, V.Load(pt + j * Rows + V.Count), a1);
                }
                V.Store(a0, o);
                V.Store(a1, o + V.Count);
            }
        }
    }
}
