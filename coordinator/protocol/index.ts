export * from './shadow-topics.js'
export * from './shadow-document.js'
