using System.Runtime.InteropServices;

namespace Sd.Engine.Text;

// Prompts as text-encoder rows: diffusers' one truncated row, or AUTOMATIC1111's chunks of 75 tokens.
public sealed partial class ClipTokenizer
{
    /// <summary>
    /// The most rows a prompt may take (2400 text tokens). Every row adds 77 tokens to the context each UNet
    /// cross-attention reads and keeps projected (about 15 MB per row for SD 1.5 with guidance), so a runaway prompt
    /// is refused rather than left to exhaust memory.
    /// </summary>
    public const int MaxChunks = 32;

    /// <summary>The most distinct texts a prompt's editing may read over the steps; each is encoded before the run.</summary>
    public const int MaxScheduledTexts = 256;

    /// <summary>How far back from a full chunk's end a comma may be for the words after it to move on (A1111's default).</summary>
    private const int CommaBacktrack = 20;

    /// <summary>
    /// The rows of <paramref name="prompt"/> in <paramref name="syntax"/>. The chunked syntaxes first take out
    /// A1111's comments (<see cref="PromptComments"/>, a negative prompt's too) and extra-network tags (<c>&lt;lora:name:0.8&gt;</c>, <see cref="ExtraNetworks"/>), as AUTOMATIC1111 does before
    /// it reads a prompt (there not a negative prompt, whose tags stay text), and report them in <see cref="TokenizedPrompt.RemovedTags"/>. Reference for the chunked syntaxes:
    /// stable-diffusion-webui FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line: each piece of text tokenized on its
    /// own; a chunk is full at 75 tokens; a full chunk whose last comma is at most 20 tokens back ends after that comma
    /// and the rest moves to the next one; a textual inversion that does not fit moves whole; BREAK ends a chunk; an
    /// empty prompt is one chunk of bos, eos and padding. One text: prompt editing and AND are read by
    /// <see cref="TokenizeSchedule"/> and <see cref="TokenizeComposable"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The prompt is longer than <see cref="PromptAttention.MaxLength"/> characters
    /// or needs more than <see cref="MaxChunks"/> chunks (chunked syntaxes), or a weight is not a finite number or comes to
    /// more than float32 holds.</exception>
    public TokenizedPrompt Tokenize(string prompt, PromptSyntax syntax)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        switch (syntax)
        {
            case PromptSyntax.Plain:
                long[] ids = EncodeForPipeline(prompt, out int dropped);
                float[] weights = new float[ids.Length];
                weights.AsSpan().Fill(1f);
                return new TokenizedPrompt([new PromptChunk(ids, weights)], dropped);
            case PromptSyntax.Chunked or PromptSyntax.Weighted:
                string text = StripChunked(prompt, out IReadOnlyList<ExtraNetworkTag> tags);
                return Chunks(text, syntax, tags);
            default:
                throw new ArgumentOutOfRangeException(nameof(syntax), syntax, "not a prompt syntax");
        }
    }

    /// <summary>
    /// The rows of each text <paramref name="prompt"/> reads over <paramref name="steps"/> steps. The chunked syntaxes
    /// read AUTOMATIC1111's prompt editing (<see cref="PromptSchedule"/>: <c>[from:to:when]</c>, <c>[a|b]</c>) after
    /// taking out the extra-network tags, as A1111 does, then tokenize each text as <see cref="Tokenize"/> does (a text
    /// the schedule repeats, once); plain is one text for every step.
    /// </summary>
    /// <param name="takeTagsOut">Whether extra-network tags are taken out: A1111 does so for the prompt, and leaves
    /// a negative prompt's as text.</param>
    /// <param name="firstPassSteps">For a hires fix's second pass, the first pass's steps (<see cref="PromptSchedule.Parse"/>).</param>
    /// <exception cref="ArgumentException">As <see cref="Tokenize"/>, for any of the texts; or a step of a
    /// <c>[from:to:when]</c> is out of range.</exception>
    public IReadOnlyList<ScheduledTokens> TokenizeSchedule(string prompt, PromptSyntax syntax, int steps, bool takeTagsOut = true,
        int? firstPassSteps = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        if (syntax is not (PromptSyntax.Chunked or PromptSyntax.Weighted))
        {
            return [new ScheduledTokens(steps, prompt, Tokenize(prompt, syntax))];
        }
        if (!takeTagsOut)
        {
            return Schedule(ChunkedText(prompt), syntax, steps, [], firstPassSteps);
        }
        string text = StripChunked(prompt, out IReadOnlyList<ExtraNetworkTag> tags);
        return Schedule(text, syntax, steps, tags, firstPassSteps);
    }

    /// <summary>
    /// <see cref="TokenizeSchedule"/> for each part of a prompt composed with AND (A1111's composable diffusion,
    /// <see cref="PromptComposition"/>), split after the tags are taken out and before each part's schedule is read,
    /// as A1111 does; plain has no AND: one part of weight 1.
    /// </summary>
    /// <exception cref="ArgumentException">As <see cref="TokenizeSchedule"/>; or a part's weight is not a finite
    /// number, or the prompt has more than <paramref name="maxParts"/> parts (checked before any part is read).</exception>
    public IReadOnlyList<ComposablePrompt> TokenizeComposable(string prompt, PromptSyntax syntax, int steps, int maxParts = int.MaxValue,
        int? firstPassSteps = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentOutOfRangeException.ThrowIfLessThan(steps, 1);
        if (syntax is not (PromptSyntax.Chunked or PromptSyntax.Weighted))
        {
            return [new ComposablePrompt(1.0, TokenizeSchedule(prompt, syntax, steps))];
        }
        string text = StripChunked(prompt, out IReadOnlyList<ExtraNetworkTag> tags);
        IReadOnlyList<PromptPart> parts = PromptComposition.Split(text);
        if (parts.Count > maxParts)
        {
            throw new ArgumentException($"it is composed of {parts.Count} parts with AND; at most {maxParts} are run (each adds an image to every UNet call)", nameof(prompt));
        }
        var result = new ComposablePrompt[parts.Count];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = new ComposablePrompt(parts[i].Weight, Schedule(parts[i].Text, syntax, steps, tags, firstPassSteps));
        }
        return result;
    }

    /// <summary>The schedule of a text whose tags are out, each distinct text tokenized once.</summary>
    private ScheduledTokens[] Schedule(string text, PromptSyntax syntax, int steps, IReadOnlyList<ExtraNetworkTag> tags, int? firstPassSteps)
    {
        IReadOnlyList<ScheduledText> schedule = PromptSchedule.Parse(text, steps, firstPassSteps);
        int distinct = schedule.DistinctBy(entry => entry.Text, StringComparer.Ordinal).Count();
        if (distinct > MaxScheduledTexts)
        {
            // Refused before any of them is tokenized: an alternation of many periods makes a text per step.
            throw new ArgumentException($"prompt editing: it reads {distinct} different texts over {steps} steps; at most {MaxScheduledTexts} are encoded", "prompt");
        }
        var byText = new Dictionary<string, TokenizedPrompt>(StringComparer.Ordinal);
        var result = new ScheduledTokens[schedule.Count];
        for (int i = 0; i < result.Length; i++)
        {
            string scheduled = schedule[i].Text;
            if (!byText.TryGetValue(scheduled, out TokenizedPrompt? tokens))
            {
                tokens = Chunks(scheduled, syntax, tags);
                byText[scheduled] = tokens;
            }
            result[i] = new ScheduledTokens(schedule[i].EndAtStep, scheduled, tokens);
        }
        return result;
    }

    /// <summary>
    /// A1111's empty_chunk as its encoder reads it: bos, eos, then the padding token (eos for SD 1.x; process_tokens
    /// puts SD 2.x's pad after the first eos), weights 1; what pads the shorter texts of a prompt that changes during
    /// the steps, as A1111 encodes them in one batch. The same as an empty prompt's chunk.
    /// </summary>
    public PromptChunk EmptyChunk()
    {
        var weights = new float[MaxLength];
        weights.AsSpan().Fill(1f);
        return new PromptChunk(Wrap([]), weights);
    }

    /// <summary>The chunked syntaxes' text: the length checked, the comments and extra-network tags taken out.</summary>
    private static string StripChunked(string prompt, out IReadOnlyList<ExtraNetworkTag> tags) =>
        ExtraNetworks.Strip(ChunkedText(prompt), out tags);

    /// <summary>The chunked syntaxes' text before anything reads it: the length checked, A1111's comments taken out.</summary>
    private static string ChunkedText(string prompt)
    {
        CheckLength(prompt);
        return PromptComments.Strip(prompt);
    }

    /// <summary>The emphasis parser's bound for both chunked syntaxes, so either refuses a runaway prompt before any work.</summary>
    private static void CheckLength(string prompt)
    {
        if (prompt.Length > PromptAttention.MaxLength)
        {
            throw new ArgumentException($"it is {prompt.Length} characters long; at most {PromptAttention.MaxLength} are read", nameof(prompt));
        }
    }

    /// <summary>The chunks of a text with its tags already taken out.</summary>
    private TokenizedPrompt Chunks(string text, PromptSyntax syntax, IReadOnlyList<ExtraNetworkTag> tags)
    {
        IReadOnlyList<PromptPiece> pieces = syntax == PromptSyntax.Weighted ? PromptAttention.Parse(text) : [new PromptPiece(text, 1.0)];
        return new TokenizedPrompt(new ChunkBuilder(this).Build(pieces), 0) { RemovedTags = tags };
    }

    /// <summary>Fills chunks token by token (tokenize_line's loop, in its order of checks).</summary>
    private sealed class ChunkBuilder(ClipTokenizer tokenizer)
    {
        private readonly List<PromptChunk> _chunks = [];
        private readonly List<int> _tokens = [];
        private readonly List<double> _weights = [];
        private int _lastComma = -1;

        public List<PromptChunk> Build(IReadOnlyList<PromptPiece> pieces)
        {
            int full = tokenizer.ChunkLength;
            foreach (PromptPiece piece in pieces)
            {
                if (piece.IsBreak)
                {
                    Emit();
                    continue;
                }
                int[] tokens = tokenizer.Encode(piece.Text);
                int position = 0;
                while (position < tokens.Length)
                {
                    int token = tokens[position];
                    if (token == tokenizer._commaId)
                    {
                        _lastComma = _tokens.Count;
                    }
                    else if (_tokens.Count == full && _lastComma != -1 && _tokens.Count - _lastComma <= CommaBacktrack)
                    {
                        MoveAfterLastComma();
                    }
                    if (_tokens.Count == full)
                    {
                        Emit();
                    }
                    // A textual inversion's ids go in together: the whole word moves on if it does not fit.
                    int count = tokenizer._addedCounts.GetValueOrDefault(token, 1);
                    if (_tokens.Count + count > full)
                    {
                        Emit();
                    }
                    for (int i = 0; i < count; i++)
                    {
                        _tokens.Add(tokens[position + i]);
                        _weights.Add(piece.Weight);
                    }
                    position += count;
                }
            }
            if (_tokens.Count > 0 || _chunks.Count == 0)
            {
                Emit();
            }
            return _chunks;
        }

        /// <summary>Ends the chunk after its last comma; the tokens after it start the next chunk.</summary>
        private void MoveAfterLastComma()
        {
            int from = _lastComma + 1;
            int[] tokens = _tokens.GetRange(from, _tokens.Count - from).ToArray();
            double[] weights = _weights.GetRange(from, _weights.Count - from).ToArray();
            _tokens.RemoveRange(from, tokens.Length);
            _weights.RemoveRange(from, weights.Length);
            Emit();
            _tokens.AddRange(tokens);
            _weights.AddRange(weights);
        }

        private void Emit()
        {
            if (_chunks.Count == MaxChunks)
            {
                throw new ArgumentException($"it takes more than {MaxChunks} chunks of {tokenizer.ChunkLength} tokens", "prompt");
            }
            long[] ids = tokenizer.Wrap(CollectionsMarshal.AsSpan(_tokens));
            float[] weights = new float[ids.Length];
            weights.AsSpan().Fill(1f);
            for (int i = 0; i < _weights.Count; i++)
            {
                // The reference's multipliers are a float32 tensor.
                float weight = (float)_weights[i];
                weights[i + 1] = float.IsFinite(weight)
                    ? weight
                    : throw new ArgumentException($"its emphasis weights come to {_weights[i]}, which is not a finite float32", "prompt");
            }
            _chunks.Add(new PromptChunk(ids, weights));
            _tokens.Clear();
            _weights.Clear();
            _lastComma = -1;
        }
    }
}
