using Sd.Cli.Commands;
using Sd.Engine.Text;
using Sd.Loaders;
using Sd.Loaders.Checkpoints;
using Sd.Loaders.Npy;
using Sd.Loaders.Png;
using Sd.Loaders.Safetensors;
using Sd.Loaders.Tests;
using Sd.Loaders.Weights;

namespace Sd.Cli.Tests;

/// <summary>
/// <c>--embedding FILE[:TOKEN]</c> on sd generate (the built-in demo model), tokenize and encode-text (the tiny
/// fixture model). The oracle: an embedding made of some words' token embeddings acts exactly as those words.
/// </summary>
public sealed class GenerateEmbeddingTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static readonly string[] Common = ["--steps", "2", "--width", "64", "--height", "64", "--seed", "4"];

    [Fact]
    public void An_embedding_paints_the_words_it_copies_and_is_recorded()
    {
        using ModelSource demo = ModelSource.Demo();
        string cat = Embedding(demo, ClipTokenizer.ByteLevel(), "red cat", "cat.safetensors");
        string blurry = Embedding(demo, ClipTokenizer.ByteLevel(), "blurry", "blurry-neg.safetensors");
        string written = _dir.File("written.png"), called = _dir.File("called.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--prompt", "a red cat", "--negative-prompt", "blurry", "--out", written], TextWriter.Null));
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--prompt", "a <cat>", "--negative-prompt", "blurry-neg",
            "--embedding", cat + ":<cat>", "--embedding", blurry, "--out", called], TextWriter.Null));

        PngImage expected = PngFile.Read(written), actual = PngFile.Read(called);
        Assert.True(expected.Pixels.AsSpan().SequenceEqual(actual.Pixels), "the embeddings act as the words they copy");
        Assert.EndsWith("Model: built-in demo (random weights), Embeddings: \"<cat>, blurry-neg\"", actual.Text["parameters"]);
        Assert.DoesNotContain("Embeddings", expected.Text["parameters"]);
    }

    [Fact]
    public void Bad_embedding_values_are_usage_errors_and_a_file_named_with_a_colon_is_taken_whole()
    {
        using ModelSource demo = ModelSource.Demo();
        string odd = Embedding(demo, ClipTokenizer.ByteLevel(), "cat", "style:v2.safetensors");
        string png = _dir.File("odd.png");
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--prompt", "a style:v2", "--embedding", odd, "--out", png], TextWriter.Null));
        Assert.EndsWith("Embeddings: \"style:v2\"", PngFile.Read(png).Text["parameters"]);
        // A token with a line break cannot add a line to the parameters: it is escaped as in JSON.
        Assert.Equal(0, GenerateCommand.Run([.. Common, "--prompt", "a", "--embedding", odd + ":x\nSteps: 99", "--out", png], TextWriter.Null));
        Assert.EndsWith("Embeddings: \"x\\nSteps: 99\"", PngFile.Read(png).Text["parameters"]);
        Assert.Contains("--embedding needs a file",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common, "--prompt", "a", "--embedding", "", "--out", png], TextWriter.Null)).Message);
        Assert.Contains($"--embedding {odd}:: the token after ':' is empty",
            Assert.Throws<UsageException>(() => GenerateCommand.Run([.. Common, "--prompt", "a", "--embedding", odd + ":", "--out", png], TextWriter.Null)).Message);
    }

    [FixtureFact]
    public void Tokenize_and_encode_text_take_embeddings_as_generate_does()
    {
        string model = Fixtures.Path("tiny/model");
        using ModelSource source = ModelSource.Open(model);
        ClipTokenizer tokenizer = ClipTokenizer.Load(source.Tokenizer!);
        string pair = Embedding(source, tokenizer, "red cat", "pair.safetensors");
        var output = new StringWriter();
        Assert.Equal(0, TextCommands.Tokenize(["--model", model, "--prompt", "a <pair>", "--embedding", pair + ":<pair>"], output));
        Assert.StartsWith($"49406 {tokenizer.Encode("a")[0]} 49408 49409 49407 ", output.ToString());

        string expected = _dir.File("expected.npy"), actual = _dir.File("actual.npy"), pooled = _dir.File("pooled.npy");
        Assert.Equal(0, TextCommands.EncodeText(["--model", model, "--prompt", "a red cat, at dusk", "--out", expected], TextWriter.Null));
        Assert.Equal(0, TextCommands.EncodeText(["--model", model, "--prompt", "a <pair>, at dusk", "--embedding", pair + ":<pair>",
            "--out", actual, "--pooled-out", pooled], TextWriter.Null));
        float[] hidden = NpyFile.Read(actual).ToFloat32();
        Assert.Equal(NpyFile.Read(expected).ToFloat32(), hidden);
        // transformers pools at argmax(input_ids) for this config's legacy eos_token_id 2: the highest id, the
        // embedding's second vector at position 3, not the end of text.
        Assert.Equal(hidden.AsSpan(3 * 32, 32).ToArray(), NpyFile.Read(pooled).ToFloat32());
    }

    /// <summary>An embedding file (A1111's emb_params key) holding the token embedding rows of <paramref name="words"/>.</summary>
    private string Embedding(ModelSource model, ClipTokenizer tokenizer, string words, string fileName)
    {
        Assert.True(model.Weights(ModelComponent.TextEncoder).TryGet("text_model.embeddings.token_embedding.weight", out TensorEntry entry));
        float[] table = entry.ReadFloat32();
        int width = (int)entry.Shape[1];
        int[] ids = tokenizer.Encode(words);
        var rows = new float[ids.Length * width];
        for (int i = 0; i < ids.Length; i++) Array.Copy(table, ids[i] * width, rows, i * width, width);
        var writer = new SafetensorsWriter();
        writer.AddFloat32("emb_params", [ids.Length, width], rows);
        string path = _dir.File(fileName);
        writer.Save(path);
        return path;
    }
}
