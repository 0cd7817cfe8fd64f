using System.Text;
using Sd.Engine.Text;

namespace Sd.Engine.Tests;

/// <summary>
/// The demo model's generated tokenizer: CLIP with no merges, so every UTF-8 byte of a word is a token, numbered as
/// transformers numbers a CLIP vocabulary (byte symbols in bytes_to_unicode order, their "&lt;/w&gt;" forms, then
/// the special tokens), and wrapped for the text encoder as CLIP does.
/// </summary>
public sealed class ByteLevelTokenizerTests
{
    private const int Bos = 512, Eos = 513;

    private static readonly ClipTokenizer Tokenizer = ClipTokenizer.ByteLevel();

    /// <summary>transformers' bytes_to_unicode order, written out independently: a byte's id is its index here.</summary>
    private static readonly int[] ByteOrder = BytesToUnicodeOrder();

    private static int[] BytesToUnicodeOrder()
    {
        var printable = new List<int>();
        printable.AddRange(Enumerable.Range('!', '~' - '!' + 1));
        printable.AddRange(Enumerable.Range(0xA1, 0xAC - 0xA1 + 1));
        printable.AddRange(Enumerable.Range(0xAE, 0xFF - 0xAE + 1));
        return [.. printable, .. Enumerable.Range(0, 256).Except(printable)];
    }

    /// <summary>The expected ids of one pre-tokenized word: its bytes, the last one in its "&lt;/w&gt;" form.</summary>
    private static IEnumerable<int> Word(string word)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(word);
        return bytes.Select((b, i) => Array.IndexOf(ByteOrder, (int)b) + (i == bytes.Length - 1 ? 256 : 0));
    }

    [Fact]
    public void Ascii_words_become_their_bytes_with_an_end_of_word_form_last()
    {
        Assert.Equal([.. Word("a"), .. Word("cat")], Tokenizer.Encode("A cat"));
        Assert.Equal([320, 66, 64, 339], Tokenizer.Encode("a cat")); // 'a' is byte 97, id 97 - 33
        Assert.Equal([.. Word("a"), .. Word("red"), .. Word(","), .. Word("round"), .. Word("box"), .. Word("!")],
            Tokenizer.Encode("a red, round box!"));
        Assert.Equal("a red , round box !", Tokenizer.Decode(Tokenizer.Encode("a red, round box!").Select(id => (long)id)));
    }

    [Theory]
    [InlineData("café über", "café über")]
    [InlineData("naïve ÅNGSTRÖM", "naïve ångström")]
    [InlineData("東京の夜", "東 京 の 夜")] // CLIP's cleanup spaces out CJK ideographs, and the regex splits by script
    [InlineData("🙂 smile", "🙂 smile")]
    public void Non_ascii_text_round_trips_through_its_utf8_bytes(string prompt, string decoded)
    {
        int[] ids = Tokenizer.Encode(prompt);
        Assert.Equal(Encoding.UTF8.GetByteCount(decoded.Replace(" ", "")), ids.Length);
        Assert.All(ids, id => Assert.InRange(id, 0, 511));
        Assert.Equal(decoded, Tokenizer.Decode(ids.Select(id => (long)id)));
    }

    [Fact]
    public void An_accented_letter_takes_the_ids_of_its_two_utf8_bytes()
    {
        // é is C3 A9: 0xC3 is the 128th byte symbol (id 127), 0xA9 the 103rd (id 102, 358 with "</w>").
        Assert.Equal([127, 358], Tokenizer.Encode("é"));
        Assert.Equal([.. Word("é")], Tokenizer.Encode("é"));
    }

    [Fact]
    public void Pipeline_ids_are_bos_text_eos_then_padding_with_eos()
    {
        long[] ids = Tokenizer.EncodeForPipeline("a cat", out int dropped);
        Assert.Equal(0, dropped);
        Assert.Equal(77, ids.Length);
        Assert.Equal([Bos, 320, 66, 64, 339, Eos], ids[..6]);
        Assert.All(ids[6..], id => Assert.Equal(Eos, id));
        Assert.Equal([Bos, Eos], Tokenizer.EncodeForPipeline("", out _)[..2]);
    }

    [Fact]
    public void Long_prompts_are_cut_to_75_text_tokens_and_chunked_like_clip()
    {
        string prompt = new('x', 80);
        long[] ids = Tokenizer.EncodeForPipeline(prompt, out int dropped);
        Assert.Equal(5, dropped);
        Assert.Equal(Bos, ids[0]);
        Assert.All(ids[1..76], id => Assert.Equal('x' - 33, id)); // a cut word keeps no "</w>"
        Assert.Equal(Eos, ids[76]);

        IReadOnlyList<PromptChunk> chunks = Tokenizer.Tokenize(prompt, PromptSyntax.Chunked).Chunks;
        Assert.Equal(2, chunks.Count);
        Assert.Equal([Bos, 'x' - 33, 'x' - 33, 'x' - 33, 'x' - 33, 'x' - 33 + 256, Eos], chunks[1].Ids[..7]); // the last 5 of 80
    }

    [Fact]
    public void Special_tokens_in_a_prompt_become_their_ids()
    {
        Assert.Equal([Bos, .. Word("hi"), Eos], Tokenizer.Encode("<|startoftext|>hi<|endoftext|>"));
    }
}
