namespace Sd.Engine.Text;

/// <summary>
/// Byte-level BPE. Reference: transformers CLIPTokenizer.bpe and bytes_to_unicode. A word's UTF-8 bytes become
/// symbols through the GPT-2 byte table, its last symbol carries "&lt;/w&gt;", then the lowest-ranked adjacent pair
/// is merged, every occurrence left to right, until no ranked pair is left.
/// Short words run the reference's loop as written; it rescans the word for every merge, which is quadratic, so
/// long words (a prompt can be one megabyte-long "word") keep their candidate pairs in per-rank buckets instead and
/// cost n log n, with the same result.
/// </summary>
internal sealed class BytePairEncoder
{
    public const string EndOfWord = "</w>";

    // Words up to this many bytes take the reference's quadratic loop, which is fastest when short.
    private const int MaxShortWord = 64;

    private static readonly char[] ByteChars = BuildByteChars();
    private static readonly Dictionary<char, byte> CharBytes =
        Enumerable.Range(0, 256).ToDictionary(b => ByteChars[b], b => (byte)b);

    private readonly Dictionary<long, Merge> _merges = new(new PairComparer());
    private readonly int[] _byteSymbols = new int[256];
    private readonly int[] _lastByteSymbols = new int[256];
    private readonly int[] _symbolTokenIds;

    /// <param name="merges">The merge rules, lowest rank first; a repeated pair keeps its last rank, as the reference's dict does.</param>
    /// <param name="vocabulary">Token string to id.</param>
    /// <param name="unknownId">The id of a final symbol the vocabulary lacks (the reference's unk_token).</param>
    public BytePairEncoder(IReadOnlyList<(string Left, string Right)> merges, IReadOnlyDictionary<string, int> vocabulary, int unknownId)
    {
        // Symbols are interned to ints so that merging compares and hashes ints, not strings. Equal strings reached
        // through different merges get the same int, as string equality gives in the reference.
        var symbols = new Dictionary<string, int>();
        int Intern(string symbol)
        {
            if (!symbols.TryGetValue(symbol, out int id))
            {
                id = symbols.Count;
                symbols.Add(symbol, id);
            }
            return id;
        }
        for (int b = 0; b < 256; b++)
        {
            _byteSymbols[b] = Intern(ByteChars[b].ToString());
            _lastByteSymbols[b] = Intern(ByteChars[b] + EndOfWord);
        }
        for (int rank = 0; rank < merges.Count; rank++)
        {
            (string left, string right) = merges[rank];
            _merges[Key(Intern(left), Intern(right))] = new Merge(rank, Intern(left + right));
        }
        _symbolTokenIds = new int[symbols.Count];
        foreach ((string symbol, int id) in symbols)
        {
            _symbolTokenIds[id] = vocabulary.TryGetValue(symbol, out int tokenId) ? tokenId : unknownId;
        }
    }

    /// <summary>
    /// The 256 byte symbols in the order CLIP's vocabulary lists them: bytes_to_unicode's order (printable Latin-1
    /// first, then the remapped bytes), which is ascending by character.
    /// </summary>
    public static IEnumerable<string> ByteSymbolsInVocabularyOrder() => ByteChars.Order().Select(c => c.ToString());

    /// <summary>The byte a vocabulary character stands for; false for characters outside the byte table.</summary>
    public static bool TryGetByte(char c, out byte value) => CharBytes.TryGetValue(c, out value);

    /// <summary>Appends the token ids of one pre-tokenized piece, given as UTF-8.</summary>
    public void Encode(ReadOnlySpan<byte> word, List<int> tokenIds)
    {
        Span<int> symbols = word.Length <= MaxShortWord ? stackalloc int[word.Length] : new int[word.Length];
        for (int i = 0; i < word.Length; i++)
        {
            symbols[i] = i == word.Length - 1 ? _lastByteSymbols[word[i]] : _byteSymbols[word[i]];
        }
        int count = word.Length <= MaxShortWord ? MergeShort(symbols) : MergeLong(symbols);
        foreach (int symbol in symbols[..count])
        {
            tokenIds.Add(_symbolTokenIds[symbol]);
        }
    }

    /// <summary>The reference's loop; returns the number of symbols left at the start of the span.</summary>
    private int MergeShort(Span<int> symbols)
    {
        int count = symbols.Length;
        while (count > 1)
        {
            var best = new Merge(int.MaxValue, -1);
            int first = 0, second = 0;
            for (int i = 0; i + 1 < count; i++)
            {
                if (_merges.TryGetValue(Key(symbols[i], symbols[i + 1]), out Merge merge) && merge.Rank < best.Rank)
                {
                    (best, first, second) = (merge, symbols[i], symbols[i + 1]);
                }
            }
            if (best.Result < 0)
            {
                break;
            }
            int written = 0;
            for (int i = 0; i < count;)
            {
                bool pair = i + 1 < count && symbols[i] == first && symbols[i + 1] == second;
                symbols[written++] = pair ? best.Result : symbols[i];
                i += pair ? 2 : 1;
            }
            count = written;
        }
        return count;
    }

    /// <summary>
    /// The same merges in n log n: each round takes the lowest rank that has candidates, sorts its positions and
    /// merges them left to right, skipping candidates whose symbols have changed since they were recorded. Pairs a
    /// round creates become candidates only after it, as the reference only sees them in its next round.
    /// </summary>
    private int MergeLong(Span<int> symbols)
    {
        int n = symbols.Length;
        // A linked list over positions; a merged pair keeps the left position, and -1 marks a consumed symbol.
        int[] live = symbols.ToArray();
        var next = new int[n];
        var previous = new int[n];
        for (int i = 0; i < n; i++)
        {
            next[i] = i + 1 < n ? i + 1 : -1;
            previous[i] = i - 1;
        }
        var candidates = new Dictionary<int, List<int>>();
        var ranks = new PriorityQueue<int, int>();
        void AddCandidate(int left, int right)
        {
            if (_merges.TryGetValue(Key(live[left], live[right]), out Merge merge))
            {
                if (!candidates.TryGetValue(merge.Rank, out List<int>? positions))
                {
                    candidates[merge.Rank] = positions = [];
                    ranks.Enqueue(merge.Rank, merge.Rank);
                }
                positions.Add(left);
            }
        }
        for (int i = 0; i + 1 < n; i++)
        {
            AddCandidate(i, i + 1);
        }
        var merged = new List<int>();
        while (ranks.TryDequeue(out int rank, out _))
        {
            List<int> positions = candidates[rank];
            candidates.Remove(rank);
            positions.Sort();
            merged.Clear();
            foreach (int left in positions)
            {
                int right = live[left] >= 0 ? next[left] : -1;
                if (right < 0 || !_merges.TryGetValue(Key(live[left], live[right]), out Merge merge) || merge.Rank != rank)
                {
                    continue;
                }
                live[left] = merge.Result;
                live[right] = -1;
                next[left] = next[right];
                if (next[right] >= 0)
                {
                    previous[next[right]] = left;
                }
                merged.Add(left);
            }
            for (int k = 0; k < merged.Count; k++)
            {
                int left = merged[k];
                if (previous[left] >= 0)
                {
                    AddCandidate(previous[left], left);
                }
                // When the right neighbour was merged too, its own (previous, itself) pair covers this one.
                if (next[left] >= 0 && (k + 1 == merged.Count || merged[k + 1] != next[left]))
                {
                    AddCandidate(left, next[left]);
                }
            }
        }
        int count = 0;
        for (int i = 0; i >= 0; i = next[i])
        {
            symbols[count++] = live[i];
        }
        return count;
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    /// <summary>
    /// Reference: bytes_to_unicode. Printable Latin-1 bytes stand for themselves; the other 68 bytes (controls,
    /// space, DEL, NBSP, soft hyphen) take U+0100 upwards in byte order, so no symbol is whitespace or a control.
    /// </summary>
    private static char[] BuildByteChars()
    {
        var chars = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            chars[b] = printable ? (char)b : (char)next++;
        }
        return chars;
    }

    private readonly record struct Merge(int Rank, int Result);

    /// <summary>
    /// long's own hash XORs the halves, so (left, right) pairs of interned ids collide massively; a multiplicative
    /// hash spreads them.
    /// </summary>
    private sealed class PairComparer : IEqualityComparer<long>
    {
        public bool Equals(long x, long y) => x == y;

        public int GetHashCode(long pair) => (int)(((ulong)pair * 0x9E3779B97F4A7C15UL) >> 32);
    }
}
