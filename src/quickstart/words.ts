/** The word lists the quickstart's tasks and pretraining corpus are built from (lowercase ASCII). */

/** Everyday nouns: sentence fillers, and the words the `upper` task capitalises. */
export const NOUNS = [
  'cat', 'dog', 'bird', 'fish', 'horse', 'mouse', 'tree', 'river', 'stone', 'house', 'road', 'city', 'field', 'cloud',
  'rain', 'snow', 'wind', 'sun', 'moon', 'star', 'sea', 'lake', 'hill', 'forest', 'garden', 'flower', 'apple', 'bread',
  'milk', 'tea', 'cake', 'soup', 'book', 'letter', 'paper', 'pencil', 'table', 'chair', 'door', 'window', 'lamp',
  'clock', 'phone', 'train', 'boat', 'car', 'bike', 'plane', 'ship', 'bridge', 'tower', 'castle', 'king', 'queen',
  'child', 'friend', 'teacher', 'doctor', 'farmer', 'baker', 'singer', 'painter', 'music', 'song', 'dance', 'game',
  'ball', 'kite', 'box', 'cup', 'plate', 'spoon', 'knife', 'shoe', 'hat', 'coat', 'shirt', 'bag', 'key', 'ring',
  'coin', 'gold', 'silver', 'iron', 'wood', 'glass', 'water', 'fire', 'earth', 'light', 'shadow', 'morning', 'evening',
  'night', 'winter', 'summer', 'spring', 'autumn', 'island', 'valley', 'desert', 'market', 'school', 'library',
  'kitchen', 'basket', 'candle', 'mirror', 'pillow', 'blanket', 'ladder', 'hammer', 'rocket', 'planet',
  'dragon', 'tiger', 'rabbit', 'turtle', 'monkey', 'zebra', 'camel', 'eagle', 'owl', 'frog', 'bee', 'ant', 'wolf',
  'bear', 'fox', 'duck', 'goat', 'sheep', 'pig', 'cow', 'lion', 'whale', 'shark', 'crab', 'pearl', 'jewel', 'crown',
  'sword', 'shield', 'arrow', 'bow', 'drum', 'flute', 'piano', 'violin', 'guitar', 'radio', 'camera', 'ticket',
  'wallet', 'pocket', 'button', 'zipper', 'thread', 'needle', 'carpet', 'curtain', 'roof', 'wall', 'floor', 'garage',
  'office', 'village', 'harbor', 'station', 'airport', 'museum', 'theater', 'temple', 'palace', 'cottage', 'tent',
] as const;

/** Verbs in the past tense, for filler sentences. */
export const VERBS = [
  'saw', 'found', 'made', 'took', 'gave', 'kept', 'left', 'met', 'read', 'wrote', 'held', 'built', 'painted', 'moved',
  'opened', 'closed', 'carried', 'watched', 'visited', 'cleaned', 'washed', 'counted', 'named', 'lost', 'bought',
] as const;

/** Neutral adjectives (no sentiment): fillers and the `neutral` class of the `mood` task. */
export const NEUTRAL_WORDS = ['small', 'big', 'old', 'new', 'red', 'blue', 'green', 'long', 'short', 'round', 'square', 'quiet', 'early', 'late', 'plain', 'tall'] as const;

/** Keywords that make a sentence positive / negative in the `mood` task. */
export const POSITIVE_WORDS = ['love', 'great', 'happy', 'wonderful', 'lovely', 'excellent', 'joy', 'delight', 'nice', 'good'] as const;
export const NEGATIVE_WORDS = ['hate', 'awful', 'sad', 'terrible', 'horrible', 'bad', 'angry', 'ugly', 'boring', 'poor'] as const;

/** Subjects of filler sentences. */
export const SUBJECTS = ['i', 'we', 'you', 'they', 'she', 'he', 'my friend', 'the child', 'the teacher', 'our team'] as const;

/** Field names of the `json` task's records. */
export const KEYS = ['id', 'age', 'size', 'year', 'count', 'price', 'level', 'score', 'width', 'height'] as const;
