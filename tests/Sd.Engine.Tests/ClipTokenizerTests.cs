using System.Text;
using System.Text.Json;
using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.Config;
using Sd.Loaders.Npy;
using Sd.Loaders.Tests;

namespace Sd.Engine.Tests;

/// <summary>
/// The CLIP tokenizer against transformers' slow CLIPTokenizer (fixtures ref/tokenizer: 23 prompts, with and without
/// ftfy), plus the behaviour the fixtures do not pin down: SD 2.x padding, corrupt files and hostile prompts.
/// </summary>
public sealed class ClipTokenizerTests : IDisposable
{
    private const int Bos = 49406, Eos = 49407;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static ClipTokenizer FixtureTokenizer(string model, bool fixText = false) => ClipTokenizer.Load(
        TokenizerFiles.Load(Fixtures.Path($"{model}/model/tokenizer")), new ClipTokenizerOptions { FixText = fixText });

    private static JsonElement[] Details(string model)
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllBytes(Fixtures.Path($"{model}/ref/tokenizer/prompts.json")));
        return document.RootElement.GetProperty("details").EnumerateArray().Select(detail => detail.Clone()).ToArray();
    }

    private static long[][] Rows(string model, string file)
    {
        NpyArray array = NpyFile.Read(Fixtures.Path($"{model}/ref/tokenizer/{file}"));
        long[] values = array.ToInt64();
        int width = array.Shape[1];
        return Enumerable.Range(0, array.Shape[0]).Select(row => values.AsSpan(row * width, width).ToArray()).ToArray();
    }

    [FixtureTheory]
    [InlineData("tiny", false)]
    [InlineData("tiny", true)]
    [InlineData("small", false)]
    [InlineData("small", true)]
    public void Every_fixture_prompt_gives_the_reference_ids(string model, bool fixText)
    {
        ClipTokenizer tokenizer = FixtureTokenizer(model, fixText);
        JsonElement[] details = Details(model);
        long[][] expected = Rows(model, fixText ? "input_ids_ftfy.npy" : "input_ids.npy");
        Assert.Equal(23, details.Length);
        var failures = new List<string>();
        for (int i = 0; i < details.Length; i++)
        {
            string prompt = details[i].GetProperty("prompt").GetString()!;
            string key = fixText && details[i].TryGetProperty("ids_untruncated_ftfy", out _) ? "ids_untruncated_ftfy" : "ids_untruncated";
            int[] untruncated = details[i].GetProperty(key).EnumerateArray().Select(id => id.GetInt32()).ToArray();

            long[] ids = tokenizer.EncodeForPipeline(prompt, out int dropped);
            int[] text = tokenizer.Encode(prompt);
            if (!ids.SequenceEqual(expected[i]))
            {
                failures.Add($"prompt {i}: pipeline ids [{string.Join(", ", ids)}]");
            }
            if (!text.SequenceEqual(untruncated[1..^1]))
            {
                failures.Add($"prompt {i}: text ids [{string.Join(", ", text)}]");
            }
            if (dropped != Math.Max(0, untruncated.Length - 77))
            {
                failures.Add($"prompt {i}: {dropped} dropped");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }

    [FixtureFact]
    public void A_long_prompt_splits_into_chunks_of_75_ending_after_a_near_comma()
    {
        ClipTokenizer tokenizer = FixtureTokenizer("tiny");
        JsonElement detail = Details("tiny")[19];
        string prompt = detail.GetProperty("prompt").GetString()!;
        long[] text = detail.GetProperty("ids_untruncated").EnumerateArray().Select(id => id.GetInt64()).ToArray()[1..^1];
        Assert.Equal(99, text.Length);

        TokenizedPrompt plain = tokenizer.Tokenize(prompt, PromptSyntax.Plain);
        Assert.Equal(Rows("tiny", "input_ids.npy")[19], Assert.Single(plain.Chunks).Ids);
        Assert.Equal(24, plain.DroppedTokens);

        // A1111: the first chunk fills at 75 tokens with its last comma (",</w>", 267) at 67, 8 back, so it ends
        // there and the 7 tokens after it open the second.
        Assert.Equal(67, Array.LastIndexOf(text[..75], 267L));
        IReadOnlyList<PromptChunk> chunks = tokenizer.Tokenize(prompt, PromptSyntax.Chunked).Chunks;
        Assert.Equal(2, chunks.Count);
        Assert.Equal([Bos, .. text[..68], Eos, .. Enumerable.Repeat((long)Eos, 77 - 70)], chunks[0].Ids);
        Assert.Equal([Bos, .. text[68..], Eos, .. Enumerable.Repeat((long)Eos, 77 - 33)], chunks[1].Ids);
        Assert.Equal(chunks.Select(c => c.Ids), tokenizer.Tokenize(prompt, PromptSyntax.Weighted).Chunks.Select(c => c.Ids));
        long[] empty = [Bos, Eos, .. Enumerable.Repeat((long)Eos, 75)];
        Assert.Equal(empty, Assert.Single(tokenizer.Tokenize("", PromptSyntax.Chunked).Chunks).Ids);
    }

    [FixtureFact]
    public void An_sd2_tokenizer_pads_with_exclamation_marks_and_splits_every_literal_one()
    {
        ClipTokenizer sd1 = FixtureTokenizer("tiny");
        string source = Fixtures.Path("tiny/model/tokenizer");
        File.Copy(Path.Combine(source, "vocab.json"), _dir.File("vocab.json"));
        File.Copy(Path.Combine(source, "merges.txt"), _dir.File("merges.txt"));
        _dir.WriteText("tokenizer_config.json", "{\"pad_token\": \"!\", \"model_max_length\": 77}");
        ClipTokenizer sd2 = ClipTokenizer.Load(TokenizerFiles.Load(_dir.Path));

        long[] ids = sd2.EncodeForPipeline("a cat!!", out _);

        int[] cat = sd1.Encode("a cat");
        long[] expected = [Bos, .. cat.Select(id => (long)id), 0, 0, Eos, .. new long[77 - cat.Length - 4]];
        Assert.Equal(expected, ids);
        // SD 1.x: "!!" is an ordinary piece.
        Assert.DoesNotContain(0, sd1.Encode("a cat!!"));
        Assert.Equal(0, sd2.PadTokenId);
        // A1111's empty_chunk as its process_tokens leaves it: bos, eos, then the padding token (SD 1.x's is eos).
        Assert.Equal([Bos, Eos, .. new long[75]], sd2.EmptyChunk().Ids);
        Assert.Equal([Bos, .. Enumerable.Repeat((long)Eos, 76)], sd1.EmptyChunk().Ids);
        Assert.All(sd2.EmptyChunk().Weights, w => Assert.Equal(1f, w));
    }

    [FixtureFact]
    public void Special_tokens_that_appear_only_after_cleaning_keep_their_ids()
    {
        ClipTokenizer tokenizer = FixtureTokenizer("tiny");
        // The regex's literal alternatives and the reference's pre-seeded BPE cache (lowercasing or a dropped
        // zero-width space reveal them).
        Assert.Equal(new[] { 320, Eos, 320 }, tokenizer.Encode("a <|ENDOFTEXT|> a"));
        Assert.Equal(new[] { Bos }, tokenizer.Encode("<|startof\u200Btext|>"));
        // IGNORECASE folds U+017F to "s", so this is one regex piece, but it is not in the cache: BPE.
        Assert.True(tokenizer.Encode("<|\u017Ftartoftext|>").Length > 1);
    }

    [FixtureFact]
    public void Text_is_cleaned_like_python()
    {
        ClipTokenizer tokenizer = FixtureTokenizer("tiny");
        // NFC: decomposed and precomposed spellings are the same tokens (.NET's Normalize is a no-op here).
        Assert.Equal(tokenizer.Encode("caf\u00E9 \uAC00"), tokenizer.Encode("cafe\u0301 \u1100\u1161"));
        Assert.Equal(tokenizer.Encode("\u8C48"), tokenizer.Encode("\uF900"));
        // str.lower(): final sigma, and U+0130 to "i" + combining dot.
        Assert.Equal(tokenizer.Encode("\u03BF\u03B4\u03BF\u03C2 \u03C3\u03B1"), tokenizer.Encode("\u039F\u0394\u039F\u03A3 \u03A3\u0391"));
        Assert.Equal(tokenizer.Encode("i\u0307stanbul"), tokenizer.Encode("\u0130STANBUL"));
        // Python's str.split() splits at U+2028; C* characters vanish, Zs become spaces.
        Assert.Equal(tokenizer.Encode("a b c d"), tokenizer.Encode("a\u2028b\u00A0c\u0007\u200B \u3000d"));
        // An astral letter is one code point for the regex: one piece, not two halves.
        Assert.Equal(tokenizer.Encode("\U00010428"), tokenizer.Encode("\U00010400"));
        Assert.Equal("\U00010428x", tokenizer.Decode(tokenizer.Encode("\U00010428X").Select(id => (long)id)));
    }

    [FixtureFact]
    public void The_ftfy_path_fixes_what_ftfy_fixes()
    {
        ClipTokenizer tokenizer = FixtureTokenizer("tiny", fixText: true);
        Assert.Equal(tokenizer.Encode("fluffiest 'a' \"b\" & <x> caf\u00E9 loud \u2026"),
            tokenizer.Encode("\uFB02u\uFB03e\uFB06 \u2018a\u2019 \u201Cb\u201D &amp; &#60;x&#x3E; caf&eacute; \uFF2C\uFF2F\uFF35\uFF24 \u0085"));
        // A literal '<' means HTML: entities stay.
        Assert.Equal(tokenizer.Encode("<b> & amp ;"), tokenizer.Encode("<b> &amp;"));
    }

    [FixtureFact]
    public void Words_longer_than_64_bytes_merge_like_the_reference()
    {
        // Long words take the n log n merge loop; the ids are from the reference's own loop (CLIPTokenizer.bpe).
        ClipTokenizer tokenizer = FixtureTokenizer("tiny");
        Assert.Equal(new[] { 1688, 535, 4534, 39632, 1688, 535, 4534, 39632, 1688, 535, 4534, 39632, 1688, 535, 12066 },
            tokenizer.Encode(string.Concat(Enumerable.Repeat("photographicmasterpiece", 4))));
        int[] expected = [.. Enumerable.Repeat(new[] { 23126, 596 }, 9).SelectMany(pair => pair), 23126, 3937];
        Assert.Equal(expected, tokenizer.Encode(string.Concat(Enumerable.Repeat("aaaaaaaaab", 10))));
    }

    [FixtureFact]
    public void A_megabyte_prompt_is_tokenized_completely()
    {
        ClipTokenizer tokenizer = FixtureTokenizer("tiny");
        const string Phrase = "a photo of an astronaut riding a horse on mars, ";
        int perPhrase = tokenizer.Encode(Phrase).Length;
        int repeats = 1_000_000 / Phrase.Length;

        tokenizer.EncodeForPipeline(string.Concat(Enumerable.Repeat(Phrase, repeats)), out int dropped);

        Assert.Equal(perPhrase * repeats - 75, dropped);
        // One megabyte-long word goes through the n log n merge loop.
        string word = string.Concat(Enumerable.Repeat("abracadabra", 100_000));
        Assert.Equal(word, tokenizer.Decode(tokenizer.Encode(word).Select(id => (long)id)));
    }

    [FixtureFact]
    public void Nul_lone_surrogates_and_empty_prompts_do_not_throw()
    {
        ClipTokenizer plain = FixtureTokenizer("tiny");
        ClipTokenizer fixedText = FixtureTokenizer("tiny", fixText: true);
        Assert.Equal(plain.Encode("ab"), plain.Encode("a\0\uD800b\uDC00"));
        // ftfy turns a lone surrogate into U+FFFD, which is then tokenized.
        Assert.Equal(fixedText.Encode("a\uFFFDb"), fixedText.Encode("a\uD800b"));
        long[] empty = [Bos, Eos, .. Enumerable.Repeat((long)Eos, 75)];
        Assert.Equal(empty, plain.EncodeForPipeline("\0 \t", out int dropped));
        Assert.Equal(0, dropped);
    }

    [Fact]
    public void Prompt_bytes_must_be_utf8()
    {
        Assert.Equal("caf\u00E9 \U0001F431", ClipTokenizer.DecodePromptBytes(Encoding.UTF8.GetBytes("caf\u00E9 \U0001F431")));
        var error = Assert.Throws<ArgumentException>(() => ClipTokenizer.DecodePromptBytes([(byte)'a', (byte)'b', 0xC3, (byte)'x']));
        Assert.StartsWith("prompt is not valid UTF-8 at byte 2", error.Message);
        Assert.Throws<ArgumentException>(() => ClipTokenizer.DecodePromptBytes([(byte)'a', 0xE2, 0x82]));
    }

    // A minimal valid tokenizer: every byte symbol alone and with </w>, one merge, the two special tokens.
    private TokenizerFiles WriteTokenizer(string vocabJson, string merges)
    {
        return new TokenizerFiles
        {
            Directory = _dir.Path,
            VocabPath = _dir.WriteText("vocab.json", vocabJson),
            MergesPath = _dir.WriteText("merges.txt", merges),
        };
    }

    private static string ValidVocab()
    {
        var entries = new List<string>();
        for (int b = 0; b < 256; b++)
        {
            char c = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE ? (char)b : '\0';
            if (c != '\0')
            {
                entries.Add(JsonSerializer.Serialize(c.ToString()) + ": " + entries.Count);
                entries.Add(JsonSerializer.Serialize(c + "</w>") + ": " + entries.Count);
            }
        }
        entries.Add("\"ab</w>\": " + entries.Count);
        entries.Add("\"<|startoftext|>\": " + entries.Count);
        entries.Add("\"<|endoftext|>\": " + entries.Count);
        return "{\n" + string.Join(",\n", entries) + "\n}";
    }

    /// <summary>
    /// Seeded random damage to the small tokenizer's vocabulary or merges (see Sd.Loaders.Tests' MutatedInputTests):
    /// each pair loads and tokenizes a prompt with every syntax feature, or fails with an InvalidFileException naming
    /// the damaged file, never another exception.
    /// </summary>
    [Fact]
    public void Damaged_tokenizer_files_load_or_fail_naming_the_file()
    {
        byte[] vocab = Encoding.UTF8.GetBytes(ValidVocab()), merges = Encoding.UTF8.GetBytes("#version: 0.2\na b</w>\nb a</w>\n");
        var random = new Random(11);
        int loaded = 0;
        for (int i = 0; i < 600; i++)
        {
            bool damageVocab = i % 2 == 0;
            TokenizerFiles files = WriteTokenizer("", "");
            File.WriteAllBytes(files.VocabPath, damageVocab ? FileDamage.Damage(vocab, random) : vocab);
            File.WriteAllBytes(files.MergesPath, damageVocab ? merges : FileDamage.Damage(merges, random));
            try
            {
                ClipTokenizer tokenizer = ClipTokenizer.Load(files);
                tokenizer.TokenizeSchedule("a [ab:ba:0.5] (b a:1.2) BREAK [a|b] caf\u00E9 \u732B", PromptSyntax.Weighted, 20);
                loaded++;
            }
            catch (InvalidFileException e)
            {
                Assert.Equal(damageVocab ? files.VocabPath : files.MergesPath, e.FilePath);
            }
        }
        Assert.InRange(loaded, 1, 599);
    }

    [Fact]
    public void A_small_valid_tokenizer_loads_and_merges()
    {
        ClipTokenizer tokenizer = ClipTokenizer.Load(WriteTokenizer(ValidVocab(), "#version: 0.2\na b</w>\n"));
        int[] ids = tokenizer.Encode("AB ba");
        Assert.Equal(3, ids.Length);
        Assert.Equal("ab ba", tokenizer.Decode(ids.Select(id => (long)id)));
    }

    [Theory]
    [InlineData("{\"a\": 0, \"b\": ", "line 1: not well-formed JSON")]
    [InlineData("{\"a\": 0,\n\"b\": 0}", "line 2: id 0 is given to both \"a\" and \"b\"")]
    [InlineData("{\"a\": 0,\n\"a\": 1}", "line 2: token \"a\" is listed twice")]
    [InlineData("{\"a\": -1}", "line 1: the id of token \"a\" must be a non-negative integer")]
    [InlineData("{\"a\": 1.5}", "must be a non-negative integer")]
    [InlineData("[\"a\"]", "expected a JSON object")]
    [InlineData("{\"a\": 0} x", "not well-formed JSON")]
    [InlineData("", "tokenizer file is empty (0 bytes)")]
    [InlineData("{\"a\": 0}", "the bos token \"<|startoftext|>\" named by the tokenizer config is not in the vocabulary")]
    public void A_corrupt_vocabulary_is_refused_with_file_and_line(string json, string problem)
    {
        TokenizerFiles files = WriteTokenizer(json, "#version: 0.2\na b</w>\n");
        var error = Assert.Throws<InvalidFileException>(() => ClipTokenizer.Load(files));
        Assert.Equal(files.VocabPath, error.FilePath);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void A_vocabulary_that_is_not_utf8_is_refused()
    {
        TokenizerFiles files = WriteTokenizer("", "a b</w>\n");
        File.WriteAllBytes(files.VocabPath, [.. "{\"a\": 0,\n\""u8, 0xFF, .. "\": 1}"u8]);
        var error = Assert.Throws<InvalidFileException>(() => ClipTokenizer.Load(files));
        Assert.Equal(files.VocabPath, error.FilePath);
        Assert.Contains("line 2: ", error.Message);
    }

    [Fact]
    public void A_truncated_vocabulary_is_refused()
    {
        string json = ValidVocab();
        TokenizerFiles files = WriteTokenizer(json[..(json.Length / 2)], "a b</w>\n");
        var error = Assert.Throws<InvalidFileException>(() => ClipTokenizer.Load(files));
        Assert.Equal(files.VocabPath, error.FilePath);
        Assert.Matches("line [0-9]+: not well-formed JSON", error.Message);
    }

    [Theory]
    [InlineData("#version: 0.2\na b</w>\nc\n", "line 3: a merge rule is two symbols separated by a space, found \"c\"")]
    [InlineData("#version: 0.2\r\na b</w>\r\n\r\nc d\r\n", "line 3:")]
    [InlineData("#version: 0.2\na b c\n", "line 2:")]
    [InlineData("#version: 0.2\n", "no merge rules")]
    [InlineData(" \n", "the file is empty")]
    public void Corrupt_merges_are_refused_with_file_and_line(string merges, string problem)
    {
        TokenizerFiles files = WriteTokenizer(ValidVocab(), merges);
        var error = Assert.Throws<InvalidFileException>(() => ClipTokenizer.Load(files));
        Assert.Equal(files.MergesPath, error.FilePath);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void Merges_that_are_not_utf8_are_refused()
    {
        TokenizerFiles files = WriteTokenizer(ValidVocab(), "");
        File.WriteAllBytes(files.MergesPath, [.. "#version: 0.2\na b\n"u8, 0xFF, (byte)' ', (byte)'c']);
        var error = Assert.Throws<InvalidFileException>(() => ClipTokenizer.Load(files));
        Assert.Contains("line 3: not valid UTF-8 at byte 18", error.Message);
    }

    [Fact]
    public void Missing_files_are_named()
    {
        TokenizerFiles files = WriteTokenizer(ValidVocab(), "a b\n") with { MergesPath = _dir.File("nope.txt") };
        var error = Assert.Throws<FileNotFoundException>(() => ClipTokenizer.Load(files));
        Assert.Equal(_dir.File("nope.txt"), error.FileName);
        Assert.Contains("nope.txt", error.Message);
    }
}
