using Sd.Engine.Modules;
using Sd.Engine.Tensors;
using Sd.Loaders.Config;
using Sd.Loaders.Weights;

namespace Sd.Engine.Text;

/// <summary>The text encoder's outputs for a batch of token-id rows.</summary>
public sealed class ClipTextOutput : IDisposable
{
    internal ClipTextOutput(Tensor hidden, Tensor pooled, int[] lengths)
    {
        Hidden = hidden;
        Pooled = pooled;
        _lengths = lengths;
    }

    /// <summary>[B, L, W]: final_layer_norm of the selected layer's output (the prompt embeddings).</summary>
    public Tensor Hidden { get; }

    /// <summary>[B, W]: the hidden state at each row's end-of-text token (transformers' pooler_output).</summary>
    public Tensor Pooled { get; }

    /// <summary>
    /// Each row's tokens in <see cref="Hidden"/>: all L, except for prompts shorter than the longest
    /// (<see cref="ClipTextModel.EncodePrompts"/>); the context lengths the UNet's Forward takes.
    /// </summary>
    public ReadOnlySpan<int> Lengths => _lengths;

    private readonly int[] _lengths;

    public void Dispose()
    {
        Hidden.Dispose();
        Pooled.Dispose();
    }
}

/// <summary>
/// CLIP text transformer: token + position embeddings, pre-LN encoder layers with a causal mask only (SD passes no
/// attention mask, so padding positions are computed like any token), final LayerNorm. F32/F16/BF16 weights are
/// widened once at load; compute is float32.
/// Reference: transformers CLIPTextModel / CLIPTextTransformer (4.38).
/// </summary>
public sealed unsafe class ClipTextModel : IDisposable
{
    private readonly NativeBlock _tokenEmbedding;
    private readonly NativeBlock _positionEmbedding;
    private readonly AddedTokens _added;
    private readonly ClipEncoderLayer[] _layers;
    private readonly LayerNormModule _finalLayerNorm;

    /// <summary>Held by every call and by Dispose, which must not free weights a running call reads.</summary>
    private readonly object _gate = new();
    private bool _disposed;

    /// <param name="added">Textual-inversion rows appended to the token embedding (ids from vocab_size on); none if null.</param>
    public ClipTextModel(ClipTextConfig config, WeightSet weights, AddedTokens? added = null)
    {
        Config = config;
        config.Validate(weights.Source); // a config built in code passes the checks a loaded one did
        _added = added ?? AddedTokens.None;
        if (_added.Count > 0 && (_added.FirstId != config.VocabSize || _added.Width != config.HiddenSize))
        {
            throw new ArgumentException($"the added tokens were made for a text encoder with vocab_size {_added.FirstId} and hidden_size {_added.Width}, not {config.VocabSize} and {config.HiddenSize}", nameof(added));
        }
        using var binder = new WeightBinder(weights);
        WeightBinder text = binder.Child("text_model");
        WeightBinder embeddings = text.Child("embeddings");
        _tokenEmbedding = embeddings.Child("token_embedding").Load("weight", [config.VocabSize, config.HiddenSize]);
        _positionEmbedding = embeddings.Child("position_embedding").Load("weight", [config.MaxPositionEmbeddings, config.HiddenSize]);
        _layers = new ClipEncoderLayer[config.NumHiddenLayers];
        WeightBinder layers = text.Child("encoder").Child("layers");
        for (int i = 0; i < _layers.Length; i++)
        {
            _layers[i] = new ClipEncoderLayer(layers.Child(i), config.HiddenSize, config.NumAttentionHeads, config.IntermediateSize,
                config.HiddenAct, config.LayerNormEps, causal: true);
        }
        _finalLayerNorm = new LayerNormModule(text.Child("final_layer_norm"), config.HiddenSize, config.LayerNormEps);
        binder.RequireAllUsed();
    }

    public ClipTextConfig Config { get; }

    /// <summary>
    /// Encodes <paramref name="batch"/> rows of token ids (each row <c>ids.Length / batch</c> long, at most
    /// max_position_embeddings). <paramref name="clipSkip"/> follows diffusers: the output is
    /// final_layer_norm(hidden_states[-(clipSkip + 1)]), so 0 is the last layer and 1 the one before it.
    /// </summary>
    public ClipTextOutput Encode(ReadOnlySpan<long> ids, int batch, int clipSkip = 0)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return Run(ids, batch, clipSkip);
        }
    }

    private ClipTextOutput Run(ReadOnlySpan<long> ids, int batch, int clipSkip)
    {
        int width = Config.HiddenSize;
        if (batch < 1 || ids.Length == 0 || ids.Length % batch != 0)
        {
            throw new ArgumentException($"{ids.Length} token ids do not split into {batch} rows", nameof(ids));
        }
        int length = ids.Length / batch;
        if (length > Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"rows of {length} tokens exceed the {Config.MaxPositionEmbeddings} positions of the text encoder", nameof(ids));
        }
        if (clipSkip < 0 || clipSkip >= _layers.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(clipSkip), clipSkip, $"clip skip must be in [0, {_layers.Length - 1}] for a text encoder of {_layers.Length} layers");
        }
        int rows = batch * length;
        Tensor hidden = Tensor.Allocate([batch, length, width]);
        Tensor pooled = Tensor.Allocate([batch, width]);
        try
        {
            Embed(ids, length, hidden.Data);
            using var x = new NativeBlock((long)rows * width, zero: false);
            using var qkv = new NativeBlock((long)rows * 3 * width, zero: false);
            using var mlp = new NativeBlock((long)rows * Config.IntermediateSize, zero: false);
            for (int i = 0; i < _layers.Length - clipSkip; i++)
            {
                _layers[i].Forward(hidden.Data, batch, length, x.Pointer, qkv.Pointer, mlp.Pointer);
            }
            _finalLayerNorm.Forward(hidden.Data, hidden.Data, rows);
            Pool(ids, length, hidden.Data, pooled.Data);
            var lengths = new int[batch];
            Array.Fill(lengths, length);
            return new ClipTextOutput(hidden, pooled, lengths);
        }
        catch
        {
            hidden.Dispose();
            pooled.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Prompts as a UNet context: every chunk of every prompt encoded in one batch, each weighted chunk given its
    /// emphasis (<see cref="PromptEmphasis"/>), and each prompt's chunks joined along the sequence. Hidden is
    /// [P, T, W] with T the longest prompt's 77 x chunks; a shorter prompt's rows past its own
    /// <see cref="ClipTextOutput.Lengths"/> are zero. Pooled is each prompt's first chunk's, as in AUTOMATIC1111.
    /// </summary>
    /// <exception cref="ArgumentException">A chunk's weights bring its mean to zero or its states beyond float32; the
    /// message names the prompt and chunk (0-based).</exception>
    public ClipTextOutput EncodePrompts(IReadOnlyList<TokenizedPrompt> prompts, int clipSkip = 0)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0)
        {
            throw new ArgumentException("at least one prompt is needed", nameof(prompts));
        }
        int width = Config.HiddenSize, rows = 0, longest = 0;
        foreach (TokenizedPrompt prompt in prompts)
        {
            if (prompt.Chunks.Count == 0)
            {
                throw new ArgumentException("every prompt needs at least one chunk", nameof(prompts));
            }
            rows += prompt.Chunks.Count;
            longest = Math.Max(longest, prompt.Chunks.Count);
        }
        int length = prompts[0].Chunks[0].Ids.Length;
        var ids = new long[rows * length];
        int row = 0;
        foreach (TokenizedPrompt prompt in prompts)
        {
            foreach (PromptChunk chunk in prompt.Chunks)
            {
                if (chunk.Ids.Length != length || chunk.Weights.Length != length)
                {
                    throw new ArgumentException($"every chunk must hold {length} ids and weights, one has {chunk.Ids.Length} and {chunk.Weights.Length}", nameof(prompts));
                }
                chunk.Ids.CopyTo(ids, row++ * length);
            }
        }
        using ClipTextOutput encoded = Encode(ids, rows, clipSkip);
        var lengths = new int[prompts.Count];
        Tensor hidden = Tensor.Allocate([prompts.Count, longest * length, width]); // zeroed: the short prompts' tails
        Tensor pooled = Tensor.Allocate([prompts.Count, width]);
        row = 0;
        for (int p = 0; p < prompts.Count; p++)
        {
            IReadOnlyList<PromptChunk> chunks = prompts[p].Chunks;
            lengths[p] = chunks.Count * length;
            encoded.Pooled.Span.Slice(row * width, width).CopyTo(pooled.Span.Slice(p * width, width));
            for (int c = 0; c < chunks.Count; c++, row++)
            {
                // [rows, L, W] row -> [P, T, W] at prompt p, tokens c * L ..
                Span<float> states = hidden.Span.Slice((p * longest * length + c * length) * width, length * width);
                encoded.Hidden.Span.Slice(row * length * width, length * width).CopyTo(states);
                if (chunks[c].IsWeighted)
                {
                    try
                    {
                        PromptEmphasis.Apply(states, chunks[c].Weights, width);
                    }
                    catch (ArgumentException e)
                    {
                        hidden.Dispose();
                        pooled.Dispose();
                        throw new ArgumentException($"prompt {p}, chunk {c}: {e.Message}", nameof(prompts), e);
                    }
                }
            }
        }
        return new ClipTextOutput(hidden, pooled, lengths);
    }

    private void Embed(ReadOnlySpan<long> ids, int length, float* hidden)
    {
        int width = Config.HiddenSize;
        int vocabulary = Config.VocabSize + _added.Count;
        fixed (float* added = _added.Rows)
        {
            for (int i = 0; i < ids.Length; i++)
            {
                long id = ids[i];
                if ((ulong)id >= (ulong)vocabulary)
                {
                    throw new ArgumentException($"token id {id} at position {i} is outside the vocabulary [0, {vocabulary})", nameof(ids));
                }
                float* token = id < Config.VocabSize
                    ? _tokenEmbedding.Pointer + id * width
                    : added + (id - Config.VocabSize) * width;
                float* position = _positionEmbedding.Pointer + (long)(i % length) * width;
                float* row = hidden + (long)i * width;
                for (int c = 0; c < width; c++)
                {
                    row[c] = token[c] + position[c];
                }
            }
        }
    }

    /// <summary>
    /// transformers 4.38: with the legacy eos_token_id 2 the pooled row is argmax(input_ids) (the first highest id,
    /// i.e. the first end-of-text when it is the largest id), else the first position holding eos_token_id.
    /// </summary>
    private void Pool(ReadOnlySpan<long> ids, int length, float* hidden, float* pooled)
    {
        int width = Config.HiddenSize;
        int batch = ids.Length / length;
        for (int b = 0; b < batch; b++)
        {
            ReadOnlySpan<long> row = ids.Slice(b * length, length);
            int index = 0;
            if (Config.EosTokenId == 2)
            {
                for (int i = 1; i < length; i++)
                {
                    if (row[i] > row[index]) index = i;
                }
            }
            else
            {
                index = Math.Max(0, row.IndexOf(Config.EosTokenId));
            }
            new ReadOnlySpan<float>(hidden + ((long)b * length + index) * width, width)
                .CopyTo(new Span<float>(pooled + (long)b * width, width));
        }
    }

    /// <summary>Frees the weights, after a call running on another thread has finished; later calls throw.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _disposed = true;
            _tokenEmbedding.Dispose();
            _positionEmbedding.Dispose();
            foreach (ClipEncoderLayer layer in _layers)
            {
                layer.Dispose();
            }
            _finalLayerNorm.Dispose();
        }
    }
}
