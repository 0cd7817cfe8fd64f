using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Unicode;
using Sd.Loaders;
using Sd.Loaders.Config;

namespace Sd.Engine.Text;

/// <summary>Choices that change how prompts are tokenized.</summary>
public sealed record ClipTokenizerOptions
{
    /// <summary>
    /// Clean text as transformers does when the ftfy package is installed (ftfy.fix_text, whitespace collapse,
    /// lowercase; see <see cref="TextFixer"/> for what is covered) instead of the BasicTokenizer cleanup of a plain
    /// install. Off by default, as the reference pipelines run without ftfy.
    /// </summary>
    public bool FixText { get; init; }
}

/// <summary>
/// The CLIP byte-level BPE tokenizer of Stable Diffusion's text encoders, giving the ids of transformers' slow
/// CLIPTokenizer as the SD pipelines call it.
/// Reference: transformers CLIPTokenizer (tokenization_clip.py) and PreTrainedTokenizer.tokenize: special tokens
/// (bos, eos, unk, pad) found literally in the prompt become their ids; each piece between them is cleaned
/// (<see cref="ClipTextCleaner"/>), split by the CLIP regex (<see cref="ClipPreTokenizer"/>) and byte-pair encoded
/// (<see cref="BytePairEncoder"/>). With an SD 2.x tokenizer the pad token is "!", so every "!" in a prompt becomes
/// id 0, exactly as in transformers. Safe to use from several threads.
/// </summary>
public sealed partial class ClipTokenizer
{
    // BPE results are cached per piece, as the reference does, but bounded: a huge prompt of distinct words must not
    // grow memory without limit.
    private const int MaxCacheEntries = 10_000;
    private const int MaxCachedPieceLength = 64;

    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<int, string> _tokens;
    private readonly BytePairEncoder _encoder;
    private readonly int _unknownId;
    /// <summary>Words matched in the raw prompt before any cleaning, longest first: special tokens and added tokens.</summary>
    private readonly (string Content, int[] Ids)[] _specialTokens;
    private readonly SearchValues<char> _specialTokenStarts;
    private readonly Dictionary<int, string> _addedNames;
    /// <summary>Each added word's first id and its number of vectors (ids), kept together in one chunk.</summary>
    private readonly Dictionary<int, int> _addedCounts;
    /// <summary>",&lt;/w&gt;", where a full chunk may end early (-1 if the vocabulary has none).</summary>
    private readonly int _commaId;
    private readonly bool _fixText;
    private readonly Dictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly Lock _cacheLock = new();

    /// <summary>The special tokens and sequence length: a tokenizer folder's configs, or the byte-level tokenizer's.</summary>
    private sealed record Settings(string Bos, string Eos, string Unk, string Pad, int MaxLength);

    /// <param name="vocabularySource">The vocabulary's file, named in errors.</param>
    private ClipTokenizer(string vocabularySource, Settings settings, ClipVocabularyReader.Vocabulary vocabulary,
        List<(string Left, string Right)> merges, bool fixText)
    {
        _ids = vocabulary.Ids;
        _tokens = vocabulary.Tokens;
        BosTokenId = SpecialTokenId(vocabularySource, settings.Bos, "bos");
        EosTokenId = SpecialTokenId(vocabularySource, settings.Eos, "eos");
        PadTokenId = SpecialTokenId(vocabularySource, settings.Pad, "pad");
        _unknownId = SpecialTokenId(vocabularySource, settings.Unk, "unk");
        _specialTokens = MatchOrder(new[] { settings.Bos, settings.Eos, settings.Unk, settings.Pad }
            .Distinct(StringComparer.Ordinal)
            .Select(token => (token, new[] { _ids[token] })));
        _specialTokenStarts = StartsOf(_specialTokens);
        _addedNames = new Dictionary<int, string>();
        _addedCounts = new Dictionary<int, int>();
        _commaId = _ids.GetValueOrDefault(",</w>", -1);
        _encoder = new BytePairEncoder(merges, _ids, _unknownId);
        _fixText = fixText;
        MaxLength = settings.MaxLength;
    }

    /// <summary>A copy of <paramref name="source"/> that also matches <paramref name="added"/>' words.</summary>
    private ClipTokenizer(ClipTokenizer source, IReadOnlyList<AddedToken> added)
    {
        _ids = source._ids;
        _tokens = source._tokens;
        _encoder = source._encoder;
        _unknownId = source._unknownId;
        _fixText = source._fixText;
        BosTokenId = source.BosTokenId;
        EosTokenId = source.EosTokenId;
        PadTokenId = source.PadTokenId;
        MaxLength = source.MaxLength;
        _commaId = source._commaId;
        _addedNames = new Dictionary<int, string>(); // WithAddedTokens refuses a tokenizer that has some already
        _addedCounts = new Dictionary<int, int>();
        var words = new List<(string Content, int[] Ids)>(source._specialTokens);
        foreach (AddedToken token in added)
        {
            int[] ids = new int[token.Count];
            for (int i = 0; i < ids.Length; i++)
            {
                ids[i] = token.FirstId + i;
                // diffusers' names for a multi-vector embedding's tokens: "word", "word_1", "word_2", ...
                _addedNames.Add(ids[i], i == 0 ? token.Content : $"{token.Content}_{i}");
            }
            _addedCounts.Add(token.FirstId, token.Count);
            words.Add((token.Content, ids));
        }
        _specialTokens = MatchOrder(words);
        _specialTokenStarts = StartsOf(_specialTokens);
    }

    public int BosTokenId { get; }

    public int EosTokenId { get; }

    public int PadTokenId { get; }

    /// <summary>The text encoder's sequence length (model_max_length, 77 for SD).</summary>
    public int MaxLength { get; }

    /// <summary>Text tokens per sequence: <see cref="MaxLength"/> less bos and eos (75 for SD).</summary>
    public int ChunkLength => MaxLength - 2;

    /// <summary>Reads and validates vocab.json and merges.txt; errors name the file and line.</summary>
    public static ClipTokenizer Load(TokenizerFiles files, ClipTokenizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (files.ModelMaxLength < 3)
        {
            throw new InvalidFileException(Path.Combine(files.Directory, "tokenizer_config.json"),
                $"model_max_length {files.ModelMaxLength} leaves no room for text between bos and eos");
        }
        ClipVocabularyReader.Vocabulary vocabulary = ClipVocabularyReader.ReadVocabulary(files.VocabPath);
        List<(string Left, string Right)> merges = ClipVocabularyReader.ReadMerges(files.MergesPath);
        var settings = new Settings(files.BosToken, files.EosToken, files.UnkToken, files.PadToken, files.ModelMaxLength);
        return new ClipTokenizer(files.VocabPath, settings, vocabulary, merges, options?.FixText ?? false);
    }

    /// <summary>
    /// CLIP's tokenizer with no merge rules, made in memory for the built-in demo model (no vocabulary file can ship):
    /// every UTF-8 byte of a word is one token, the word's last byte in its "&lt;/w&gt;" form. Ids are those of a CLIP
    /// vocabulary without merges (<see cref="ByteLevelVocabulary"/>): bos &lt;|startoftext|&gt; is 512, and
    /// &lt;|endoftext|&gt; (513) is eos, pad and unk, as in SD 1.x; 77 tokens per sequence.
    /// </summary>
    public static ClipTokenizer ByteLevel()
    {
        const string end = ByteLevelVocabulary.EndOfText;
        var settings = new Settings(ByteLevelVocabulary.StartOfText, end, end, end, ByteLevelVocabulary.MaxLength);
        return new ClipTokenizer(ByteLevelVocabulary.Name, settings, ByteLevelVocabulary.Create(), [], fixText: false);
    }

    /// <summary>
    /// This tokenizer with textual-inversion words added: each found in a prompt, exactly as written (case included,
    /// even inside a longer word, the longest where several start), becomes its ids, as transformers' added tokens
    /// split the text before cleaning and diffusers' maybe_convert_prompt expands a multi-vector word into one token
    /// per vector. The reference's literal "word_1" names of the further vectors are not words here.
    /// </summary>
    /// <exception cref="InvalidFileException">A word is already in the vocabulary or added twice, or stands for more
    /// tokens than a sequence holds.</exception>
    /// <exception cref="InvalidOperationException">This tokenizer has added tokens already (all go in one
    /// <see cref="AddedTokens"/>, whose ids follow the vocabulary), or its vocabulary reaches the added ids.</exception>
    public ClipTokenizer WithAddedTokens(AddedTokens added)
    {
        ArgumentNullException.ThrowIfNull(added);
        if (added.Tokens.Count == 0)
        {
            return this;
        }
        if (_addedNames.Count > 0)
        {
            throw new InvalidOperationException("this tokenizer has added tokens already; give all textual inversions in one AddedTokens");
        }
        int highest = _tokens.Count == 0 ? -1 : _tokens.Keys.Max();
        if (highest >= added.FirstId)
        {
            throw new InvalidOperationException($"the vocabulary's ids reach {highest}, so added ids cannot start at {added.FirstId} (the text encoder's vocab_size)");
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (AddedToken token in added.Tokens)
        {
            string? clash = _ids.ContainsKey(token.Content) ? "is already in the tokenizer's vocabulary"
                : !seen.Add(token.Content) ? "is already an added token"
                : token.Count > ChunkLength ? $"stands for {token.Count} vectors; a prompt holds at most {ChunkLength} tokens"
                : null;
            if (clash is not null)
            {
                throw new InvalidFileException(token.Source, $"textual inversion token '{token.Content}' {clash}; pass another token for it");
            }
        }
        return new ClipTokenizer(this, added.Tokens);
    }

    /// <summary>The text tokens of a prompt, without bos/eos and untruncated.</summary>
    public int[] Encode(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var ids = new List<int>();
        int position = 0, segmentStart = 0;
        while (prompt.AsSpan(position).IndexOfAny(_specialTokenStarts) is >= 0 and int found)
        {
            int index = position + found;
            position = index + 1;
            foreach ((string content, int[] wordIds) in _specialTokens)
            {
                if (prompt.AsSpan(index).StartsWith(content, StringComparison.Ordinal))
                {
                    EncodeText(prompt[segmentStart..index], ids);
                    ids.AddRange(wordIds);
                    segmentStart = position = index + content.Length;
                    break;
                }
            }
        }
        EncodeText(prompt[segmentStart..], ids);
        return ids.ToArray();
    }

    /// <summary>
    /// The pipeline's <c>tokenizer(prompt, padding="max_length", max_length=77, truncation=True)</c>: bos, the first
    /// <see cref="ChunkLength"/> text tokens, eos, then padding. <paramref name="droppedTokens"/> counts the text
    /// tokens cut off, for the caller to warn about.
    /// </summary>
    public long[] EncodeForPipeline(string prompt, out int droppedTokens)
    {
        int[] text = Encode(prompt);
        int kept = Math.Min(text.Length, ChunkLength);
        droppedTokens = text.Length - kept;
        return Wrap(text.AsSpan(0, kept));
    }

    /// <summary>
    /// Ids back to text, for debugging: the tokens' bytes decoded as UTF-8 (invalid sequences become U+FFFD), every
    /// "&lt;/w&gt;" a space. Reference: CLIPTokenizer.convert_tokens_to_string. Special tokens appear literally.
    /// </summary>
    public string Decode(IEnumerable<long> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var bytes = new List<byte>();
        Span<byte> utf8 = stackalloc byte[4];
        foreach (long id in ids)
        {
            if (id is >= 0 and <= int.MaxValue && _addedNames.TryGetValue((int)id, out string? added))
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(added + " "));
                continue;
            }
            if (id is < 0 or > int.MaxValue || !_tokens.TryGetValue((int)id, out string? token))
            {
                throw new ArgumentException($"token id {id} is not in the vocabulary", nameof(ids));
            }
            foreach (Rune rune in token.EnumerateRunes())
            {
                if (rune.IsBmp && BytePairEncoder.TryGetByte((char)rune.Value, out byte value))
                {
                    bytes.Add(value);
                }
                else
                {
                    // Not a byte symbol (a hand-added token): its own UTF-8.
                    bytes.AddRange(utf8[..rune.EncodeToUtf8(utf8)]);
                }
            }
        }
        string text = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(bytes));
        return PythonText.Strip(text.Replace(BytePairEncoder.EndOfWord, " "));
    }

    /// <summary>
    /// A prompt read as raw bytes (a file, the command line) decoded as strict UTF-8.
    /// </summary>
    /// <exception cref="ArgumentException">"prompt is not valid UTF-8 at byte N" (N counted from 0).</exception>
    public static string DecodePromptBytes(ReadOnlySpan<byte> utf8)
    {
        char[] chars = new char[utf8.Length];
        if (Utf8.ToUtf16(utf8, chars, out int read, out int written, replaceInvalidSequences: false) != OperationStatus.Done)
        {
            throw new ArgumentException($"prompt is not valid UTF-8 at byte {read}", nameof(utf8));
        }
        return new string(chars, 0, written);
    }

    private void EncodeText(string segment, List<int> ids)
    {
        if (segment.Length == 0)
        {
            return;
        }
        string text = _fixText ? ClipTextCleaner.CleanFixed(segment) : ClipTextCleaner.CleanBasic(segment);
        ClipPreTokenizer.Split(text, (start, length) => EncodePiece(text.AsSpan(start, length), ids));
    }

    private void EncodePiece(ReadOnlySpan<char> piece, List<int> ids)
    {
        // The reference's BPE cache starts out holding these two, so the regex's literal matches (possible after
        // cleaning, e.g. of "<|ENDOFTEXT|>") map to their own vocabulary entries instead of being encoded.
        if (piece is "<|startoftext|>" or "<|endoftext|>")
        {
            ids.Add(_ids.GetValueOrDefault(piece.ToString(), _unknownId));
            return;
        }
        bool cacheable = piece.Length <= MaxCachedPieceLength;
        if (cacheable)
        {
            lock (_cacheLock)
            {
                if (_cache.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(piece, out int[]? cached))
                {
                    ids.AddRange(cached);
                    return;
                }
            }
        }
        byte[] utf8 = new byte[Encoding.UTF8.GetByteCount(piece)];
        Encoding.UTF8.GetBytes(piece, utf8);
        int first = ids.Count;
        _encoder.Encode(utf8, ids);
        if (cacheable)
        {
            int[] result = CollectionsMarshal.AsSpan(ids)[first..].ToArray();
            lock (_cacheLock)
            {
                if (_cache.Count >= MaxCacheEntries)
                {
                    _cache.Clear();
                }
                _cache.TryAdd(piece.ToString(), result);
            }
        }
    }

    private long[] Wrap(ReadOnlySpan<int> text)
    {
        var ids = new long[MaxLength];
        ids.AsSpan().Fill(PadTokenId);
        ids[0] = BosTokenId;
        for (int i = 0; i < text.Length; i++)
        {
            ids[i + 1] = text[i];
        }
        ids[text.Length + 1] = EosTokenId;
        return ids;
    }

    /// <summary>Longest first, so the longest word wins where several start at one place.</summary>
    private static (string Content, int[] Ids)[] MatchOrder(IEnumerable<(string Content, int[] Ids)> words) =>
        words.OrderByDescending(word => word.Content.Length).ToArray();

    private static SearchValues<char> StartsOf((string Content, int[] Ids)[] words) =>
        SearchValues.Create(string.Concat(words.Select(word => word.Content[0])));

    private int SpecialTokenId(string vocabularySource, string token, string role) =>
        _ids.TryGetValue(token, out int id)
            ? id
            : throw new InvalidFileException(vocabularySource,
                $"the {role} token \"{token}\" named by the tokenizer config is not in the vocabulary");
}
