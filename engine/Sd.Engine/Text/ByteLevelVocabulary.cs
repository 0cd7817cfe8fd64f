namespace Sd.Engine.Text;

/// <summary>
/// A CLIP vocabulary with no merge rules, built in memory for the built-in demo model, numbered as transformers'
/// CLIPTokenizer numbers a real one before its merges: the 256 byte symbols (ids 0-255), the same with "&lt;/w&gt;"
/// (256-511), then &lt;|startoftext|&gt; (512) and &lt;|endoftext|&gt; (513). The demo text encoder's config
/// (Sd.Loaders.Layout.DemoModel: vocab_size 514, bos 512, eos 513) is written against these numbers.
/// </summary>
internal static class ByteLevelVocabulary
{
    public const string Name = "built-in byte-level vocabulary";
    public const string StartOfText = "<|startoftext|>";
    public const string EndOfText = "<|endoftext|>";
    public const int MaxLength = 77;

    public static ClipVocabularyReader.Vocabulary Create()
    {
        var ids = new Dictionary<string, int>(514);
        var tokens = new Dictionary<int, string>(514);
        void Add(string token)
        {
            int id = ids.Count;
            ids.Add(token, id);
            tokens.Add(id, token);
        }
        string[] symbols = BytePairEncoder.ByteSymbolsInVocabularyOrder().ToArray();
        foreach (string symbol in symbols)
        {
            Add(symbol);
        }
        foreach (string symbol in symbols)
        {
            Add(symbol + BytePairEncoder.EndOfWord);
        }
        Add(StartOfText);
        Add(EndOfText);
        return new ClipVocabularyReader.Vocabulary(ids, tokens);
    }
}
