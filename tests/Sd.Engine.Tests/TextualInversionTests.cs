using Sd.Engine.Pipelines;
using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Config;
using Sd.Loaders.Embeddings;
using Sd.Loaders.Layout;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;
using Sd.Loaders.Weights;

namespace Sd.Engine.Tests;

/// <summary>
/// Textual inversion on the built-in demo model (no fixtures needed). The oracle: an embedding whose vectors are the
/// token embeddings of some words must act exactly as those words, so a prompt calling it up gives bit for bit the
/// text encoder output and the picture of the prompt with the words written out. Around that: how the tokenizer finds
/// added words (exactly as written, longest first, even inside a word, as transformers' added tokens) and what it
/// refuses.
/// </summary>
public sealed class TextualInversionTests : IDisposable
{
    private static readonly ClipTextConfig Config = DemoModel.TextEncoder;

    private readonly TempDirectory _dir = new();
    private readonly ModelSource _demo = ModelSource.Demo();

    public void Dispose()
    {
        _demo.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public void The_tokenizer_turns_an_added_word_into_its_ids_wherever_it_is_written_exactly()
    {
        ClipTokenizer plain = ClipTokenizer.ByteLevel();
        AddedTokens added = AddedTokens.Create([Inversion("<x>", 2), Inversion("<x>y", 1)], Config);
        ClipTokenizer tokenizer = plain.WithAddedTokens(added);
        Assert.Equal([514, 515], Ids(added.Tokens[0]));
        Assert.Equal([516], Ids(added.Tokens[1]));

        Assert.Equal([.. plain.Encode("a"), 514, 515, .. plain.Encode("b")], tokenizer.Encode("a <x> b"));
        Assert.Equal([.. plain.Encode("a"), 516, .. plain.Encode("b")], tokenizer.Encode("a<x>yb")); // the longest word wins, even inside a word
        Assert.Equal(plain.Encode("a <X> b"), tokenizer.Encode("a <X> b")); // case matters, as in transformers
        Assert.Equal([514, 515, 512, 514, 515], tokenizer.Encode("<x><|startoftext|><x>"));
        Assert.Equal(ClipTokenizer.ByteLevel().Encode("a <x> b"), plain.Encode("a <x> b")); // the original is unchanged
        Assert.Equal("<x> <x>_1 a", tokenizer.Decode([514, 515, .. plain.Encode("a")]));

        long[] row = tokenizer.EncodeForPipeline(string.Concat(Enumerable.Repeat("<x>", 40)), out int dropped);
        Assert.Equal(5, dropped); // 80 ids, 75 kept: a multi-vector word counts each vector
        Assert.Equal([514, 513], row[75..]); // and truncation may split one, as in diffusers
    }

    [Fact]
    public void Words_already_known_too_long_or_of_another_width_are_refused()
    {
        ClipTokenizer tokenizer = ClipTokenizer.ByteLevel();
        string Refused(Func<object> act) => Assert.Throws<InvalidFileException>(act).Message;
        Assert.Contains("textual inversion token 'a' is already in the tokenizer's vocabulary",
            Refused(() => tokenizer.WithAddedTokens(AddedTokens.Create([Inversion("a", 1)], Config))));
        Assert.Contains("'<|endoftext|>' is already in the tokenizer's vocabulary",
            Refused(() => tokenizer.WithAddedTokens(AddedTokens.Create([Inversion("<|endoftext|>", 1)], Config))));
        Assert.Contains("'<x>' is already an added token",
            Refused(() => tokenizer.WithAddedTokens(AddedTokens.Create([Inversion("<x>", 1), Inversion("<x>", 2)], Config))));
        Assert.Throws<InvalidOperationException>(() => tokenizer.WithAddedTokens(AddedTokens.Create([Inversion("<x>", 1)], Config))
            .WithAddedTokens(AddedTokens.Create([Inversion("<y>", 1)], Config))); // one AddedTokens holds them all
        Assert.Contains("textual inversion '' has an empty token", Refused(() => AddedTokens.Create([Inversion("", 1)], Config)));
        Assert.Contains("holds 63 values for 1 vectors of width 64",
            Refused(() => AddedTokens.Create([new TextualInversion("test", "<short>", 1, 64, new float[63])], Config)));
        Assert.Contains("holds Inf or NaN",
            Refused(() => AddedTokens.Create([new TextualInversion("test", "<nan>", 1, 64, [float.NaN, .. new float[63]])], Config)));
        Assert.Contains("'<long>' stands for 76 vectors; a prompt holds at most 75 tokens",
            Refused(() => tokenizer.WithAddedTokens(AddedTokens.Create([Inversion("<long>", 76)], Config))));
        var wide = new TextualInversion("sd15.safetensors", "<w>", 1, 768, new float[768]);
        Assert.Contains("textual inversion '<w>' has vectors of width 768; this model's text encoder takes 64",
            Refused(() => AddedTokens.Create([wide], Config)));
        Assert.Equal("sd15.safetensors", Assert.Throws<InvalidFileException>(() => AddedTokens.Create([wide], Config)).FilePath);
    }

    [Fact]
    public void An_embedding_of_words_vectors_encodes_as_those_words()
    {
        ClipTokenizer plain = ClipTokenizer.ByteLevel();
        int[] words = plain.Encode("red cat");
        AddedTokens added = AddedTokens.Create([new TextualInversion("test", "<x>", words.Length, Config.HiddenSize, TokenRows(words))], Config);
        ClipTokenizer tokenizer = plain.WithAddedTokens(added);
        using var encoder = new ClipTextModel(Config, _demo.Weights(ModelComponent.TextEncoder), added);

        long[] written = plain.EncodeForPipeline("a red cat on a hill", out _);
        long[] called = tokenizer.EncodeForPipeline("a <x> on a hill", out _);
        Assert.False(written.AsSpan().SequenceEqual(called), "the ids differ");
        using ClipTextOutput expected = encoder.Encode(written, 1);
        using ClipTextOutput actual = encoder.Encode(called, 1);
        Assert.True(expected.Hidden.Span.SequenceEqual(actual.Hidden.Span), "same vectors, same hidden states, bit for bit");
        Assert.True(expected.Pooled.Span.SequenceEqual(actual.Pooled.Span));

        using var without = new ClipTextModel(Config, _demo.Weights(ModelComponent.TextEncoder));
        Assert.Contains("token id 514 at position 2 is outside the vocabulary [0, 514)",
            Assert.Throws<ArgumentException>(() => without.Encode(called, 1)).Message);
        Assert.Contains("token id 520 at position 76 is outside the vocabulary [0, 520)", Assert.Throws<ArgumentException>(() => encoder.Encode([.. called[..76], 520], 1)).Message); // 514 + 6 vectors
    }

    [Theory]
    [InlineData(PipelineMemory.Resident)]
    [InlineData(PipelineMemory.Sequential)]
    public void A_pipeline_with_embeddings_paints_the_words_they_stand_for(PipelineMemory memory)
    {
        ClipTokenizer plain = ClipTokenizer.ByteLevel();
        string cat = WriteEmbedding("learned_embeds.safetensors", "<cat>", TokenRows(plain.Encode("red cat")));
        string blurry = WriteEmbedding("blurry-neg.safetensors", "emb_params", TokenRows(plain.Encode("blurry")));
        var request = new GenerateRequest { Steps = 2, Width = 64, Height = 64, Seed = 11 };
        using var reference = StableDiffusionPipeline.LoadDemo();
        using var pipeline = StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions
        {
            Memory = memory,
            Embeddings = [new(cat), new(blurry)],
        });
        Assert.Equal(["<cat>", "blurry-neg"], pipeline.EmbeddingTokens.Select(token => token.Content));

        using GenerateResult expected = reference.Generate(request with { Prompt = "a red cat, oil", NegativePrompt = "blurry" });
        using GenerateResult actual = pipeline.Generate(request with { Prompt = "a <cat>, oil", NegativePrompt = "blurry-neg" });
        using GenerateResult literal = reference.Generate(request with { Prompt = "a <cat>, oil", NegativePrompt = "blurry-neg" });
        Assert.True(expected.Latents.Span.SequenceEqual(actual.Latents.Span), "the embeddings act as the words they copy");
        Assert.False(expected.Latents.Span.SequenceEqual(literal.Latents.Span), "without them the words are plain text");
    }

    [Fact]
    public void A_pipeline_refuses_an_embedding_for_another_model_or_a_taken_word_when_it_loads()
    {
        string sd15 = WriteEmbedding("sd15.safetensors", "emb_params", new float[768 * 2], 768);
        var e = Assert.Throws<InvalidFileException>(() => StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Embeddings = [new(sd15)] }));
        Assert.Contains("'sd15' has vectors of width 768; this model's text encoder takes 64", e.Message);
        string small = WriteEmbedding("small.safetensors", "emb_params", new float[64]);
        Assert.Contains("'b' is already in the tokenizer's vocabulary", Assert.Throws<InvalidFileException>(() =>
            StableDiffusionPipeline.LoadDemo(pipelineOptions: new PipelineOptions { Embeddings = [new(small, "b")] })).Message);
        Assert.Throws<FileNotFoundException>(() => StableDiffusionPipeline.LoadDemo(
            pipelineOptions: new PipelineOptions { Embeddings = [new(_dir.File("absent.safetensors"))] }));
    }

    private static int[] Ids(AddedToken token) => Enumerable.Range(token.FirstId, token.Count).ToArray();

    /// <summary>An embedding of <paramref name="count"/> distinct vectors of the demo's width.</summary>
    private static TextualInversion Inversion(string token, int count)
    {
        float[] vectors = new float[count * Config.HiddenSize];
        for (int i = 0; i < vectors.Length; i++) vectors[i] = (i % 97 - 48) / 64f;
        return new TextualInversion("test", token, count, Config.HiddenSize, vectors);
    }

    /// <summary>The demo text encoder's token embedding rows of <paramref name="ids"/>.</summary>
    private float[] TokenRows(int[] ids)
    {
        Assert.True(_demo.Weights(ModelComponent.TextEncoder).TryGet("text_model.embeddings.token_embedding.weight", out TensorEntry entry));
        float[] table = entry.ReadFloat32();
        int width = Config.HiddenSize;
        var rows = new float[ids.Length * width];
        for (int i = 0; i < ids.Length; i++) Array.Copy(table, ids[i] * width, rows, i * width, width);
        return rows;
    }

    /// <summary>An embedding file of <paramref name="vectors"/>, [count, width], under <paramref name="key"/>.</summary>
    private string WriteEmbedding(string fileName, string key, float[] vectors, int width = 64)
    {
        var writer = new SafetensorsWriter();
        writer.AddFloat32(key, [vectors.Length / width, width], vectors);
        string path = _dir.File(fileName);
        writer.Save(path);
        return path;
    }
}
